"""The recipe: the YAML schema (pydantic), located loading and errors, cross-field checks, sweeps, and the reference.

May import the leaf modules, ``models``, ``rag``/``synth``/``training`` settings and the agent registry; never ``run``.
"""
