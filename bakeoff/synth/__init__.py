"""Data written by a model: the ``synthesize:`` jobs, running them (in-process or on Dask), and leakage checks.

May import the leaf modules, ``models``, ``rag`` and ``recipe.fields``.
"""
