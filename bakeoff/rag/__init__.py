"""Retrieval over a recipe's corpus: reading and chunking documents, and the Chroma vector store kept in sync
(where it lives, searching it, syncing it file by file, indexing a recipe's corpus for a run).

May import the leaf modules, ``models`` (embeddings) and ``recipe.fields``.
"""
