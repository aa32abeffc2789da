"""The recipe: the YAML schema (pydantic), located loading and errors, sweeps, and the generated reference.

May import the leaf modules, ``models``, ``rag``/``synth``/``training`` settings and the agent registry; never ``run``.
"""
