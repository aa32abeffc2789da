"""Models: parsed references and the table of what each kind does (``refs``), the backends that generate
(``registry`` → one ``*_backend`` module each; ``local_server`` serves any of them to OpenAI clients), embedding
models, judge endpoints (``chat_endpoint``) and local weights (``weights``).

May import the leaf modules and ``serving``'s Ollama client and chat templates; heavy libraries (torch,
transformers, llama.cpp, ollama) load inside functions.
"""
