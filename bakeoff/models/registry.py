"""Which code runs a model reference: the one place that maps a parsed reference to its backend.

Heavy libraries (torch, transformers, llama.cpp, ollama, openai) are imported only when a backend is built.
"""

from __future__ import annotations

from bakeoff.models.generators import BackendError, Generator
from bakeoff.models.refs import (
    CandidateRef,
    EmbeddedGGUFRef,
    EmbeddedRef,
    HFRef,
    ModelRef,
    OllamaRef,
    OpenAICompatibleRef,
)

__all__ = ["load_generator"]


def load_generator(ref: ModelRef, *, ollama_host: str | None = None) -> Generator:
    """Load (or connect to) the model a reference names.

    Args:
        ref: the model reference.
        ollama_host: the Ollama server for ``ollama:`` models (the recipe's ``ollama_host``); ``None`` means
            ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``.

    Raises:
        BackendError: the model cannot be found, imported or reached.
    """
    if isinstance(ref, EmbeddedRef):
        from bakeoff.models.embedded import ensure_imported
        from bakeoff.models.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_path(ensure_imported(ref.name), name=str(ref))
    if isinstance(ref, HFRef):
        from bakeoff.models.transformers_backend import TransformersGenerator

        return TransformersGenerator.from_path(ref.path, name=str(ref))
    if isinstance(ref, OpenAICompatibleRef):
        from bakeoff.models.openai_compatible import OpenAICompatibleGenerator

        return OpenAICompatibleGenerator(ref.base_url, ref.model)
    if isinstance(ref, OllamaRef):
        from bakeoff.models.ollama_backend import OllamaGenerator

        return OllamaGenerator(ref.model, host=ollama_host)
    if isinstance(ref, EmbeddedGGUFRef):
        from bakeoff.models.llama_cpp_backend import LlamaCppGenerator

        return LlamaCppGenerator(ref.path, name=str(ref))
    if isinstance(ref, CandidateRef):
        raise BackendError(f"{ref} names a candidate; resolve it through the run context, not load_generator")
    raise BackendError(f"no backend for model reference {ref}")
