"""How a model is reached over the OpenAI chat-completions protocol — what a judge needs.

A remote model (``ollama:``, ``openai-compatible:``) already has a server; a model bakeoff runs itself
(``embedded:``, ``hf:``) is built and served by :class:`~bakeoff.models.local_server.LocalOpenAIServer` on
127.0.0.1. The ``judge`` job of :data:`bakeoff.models.refs.REF_KINDS` names the functions below. They are
cheap (nothing is loaded until :attr:`ChatEndpoint.serve` is called), so a judge can compute its cache
identity without starting anything.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from bakeoff.models.generators import BackendError, Generator
from bakeoff.models.refs import (
    EmbeddedRef,
    HFRef,
    ModelRef,
    OllamaRef,
    OpenAICompatibleRef,
    kind_of,
    scheme_forms,
)

__all__ = [
    "ChatEndpoint",
    "chat_endpoint",
    "embedded_endpoint",
    "ollama_endpoint",
    "openai_compatible_endpoint",
    "transformers_endpoint",
]


@dataclass(frozen=True)
class ChatEndpoint:
    """A running server (``base_url`` and ``model``), or a model to build and serve locally (``serve``).

    ``served_by`` names the engine bakeoff serves the model with (llama.cpp and transformers decode the same
    model differently, so it is part of judge-cache keys); None for a remote server.
    """

    base_url: str | None = None
    model: str | None = None
    serve: Callable[[], Generator] | None = None
    served_by: str | None = None


def chat_endpoint(ref: ModelRef, *, ollama_host: str | None = None) -> ChatEndpoint:
    """How to reach the model ``ref`` names over the OpenAI protocol.

    Raises:
        BackendError: its kind of reference cannot be reached that way.
    """
    kind = kind_of(ref)
    if not kind.can("judge"):
        raise BackendError(f"{ref} cannot be a judge; use {scheme_forms('judge')}")
    return kind.job("judge")(ref, ollama_host=ollama_host)


# -- the judge job of each kind ------------------------------------------------------------------------------
def embedded_endpoint(ref: EmbeddedRef, *, ollama_host: str | None = None) -> ChatEndpoint:
    """The embedded GGUF in llama.cpp (JSON-schema constrained decoding), else through transformers."""
    if importlib.util.find_spec("llama_cpp") is None:
        return transformers_endpoint(ref)
    from bakeoff.models.llama_cpp_backend import LLAMA_CPP_SETTINGS

    def serve() -> Generator:
        from bakeoff.models.embedded import gguf_path
        from bakeoff.models.llama_cpp_backend import LlamaCppChat

        return LlamaCppChat(gguf_path(ref.name))

    return ChatEndpoint(serve=serve, served_by=f"llama.cpp/{LLAMA_CPP_SETTINGS}")


def transformers_endpoint(ref: EmbeddedRef | HFRef, *, ollama_host: str | None = None) -> ChatEndpoint:
    def serve() -> Generator:
        from bakeoff.models.registry import load_generator

        return load_generator(ref)

    return ChatEndpoint(serve=serve, served_by="transformers")


def ollama_endpoint(ref: OllamaRef, *, ollama_host: str | None = None) -> ChatEndpoint:
    from bakeoff.serving.ollama import resolve_host

    return ChatEndpoint(base_url=f"{resolve_host(ollama_host)}/v1", model=ref.model)


def openai_compatible_endpoint(ref: OpenAICompatibleRef, *, ollama_host: str | None = None) -> ChatEndpoint:
    return ChatEndpoint(base_url=ref.base_url, model=ref.model)
