"""Serving a trained model elsewhere: GGUF export, the Ollama client and registration, and Ollama chat
templates (``ollama_template`` derives them from Jinja ones; ``go_template`` is the Go template interpreter).

May import the leaf modules, ``models`` and ``training``.
"""
