"""Retrieval over a recipe's corpus: reading and chunking documents, and the Chroma vector store kept in sync.

May import the leaf modules, ``models`` (embeddings) and ``recipe.fields``.
"""
