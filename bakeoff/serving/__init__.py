"""Serving a trained model elsewhere: GGUF export, the Ollama client and registration, chat templates.

May import the leaf modules, ``models`` and ``training``.
"""
