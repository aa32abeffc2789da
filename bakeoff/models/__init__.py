"""Models: parsed references, the backends that generate with them, and embedding models.

May import the leaf modules only; heavy libraries (torch, transformers, llama.cpp, ollama) load inside functions.
"""
