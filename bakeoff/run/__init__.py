"""A run: the runner (load → prepare → answer → score → write), the agents' context, the run store and questions.

May import every core package and ``bakeoff.agents``/``bakeoff.eval``; nothing imports it but ``cli`` and ``ui``,
except :mod:`bakeoff.run.documents` (the typed ``scores.json``/``manifest.json``), a leaf importing only
``bakeoff.io`` and pydantic, which scoring writes and every reader (``eval``, ``cli``, ``ui``) reads.
"""
