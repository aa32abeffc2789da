"""Which code runs a model reference: :func:`load_generator` looks the reference's kind up in
:data:`bakeoff.models.refs.REF_KINDS`, whose ``generate`` job names one of the small builders below.

Heavy libraries (torch, transformers, llama.cpp, ollama, openai) are imported only when a backend is built.
"""

from __future__ import annotations

from bakeoff.models.generators import BackendError, Generator
from bakeoff.models.refs import (
    EmbeddedGGUFRef,
    EmbeddedRef,
    HFRef,
    ModelRef,
    OllamaRef,
    OpenAICompatibleRef,
    kind_of,
    scheme_forms,
)

__all__ = [
    "embedded_generator",
    "gguf_generator",
    "hf_generator",
    "load_generator",
    "ollama_generator",
    "openai_compatible_generator",
]


def load_generator(ref: ModelRef, *, ollama_host: str | None = None) -> Generator:
    """Load (or connect to) the model a reference names.

    Args:
        ref: the model reference.
        ollama_host: the Ollama server for ``ollama:`` models (the recipe's ``ollama_host``); ``None`` means
            ``OLLAMA_HOST``, else ``http://127.0.0.1:11434``.

    Raises:
        BackendError: the model cannot be found, imported or reached, or its kind does not generate.
    """
    kind = kind_of(ref)
    if not kind.can("generate"):
        raise BackendError(
            f"{ref} names {kind.what}, not a model to load; models are {scheme_forms('generate')}"
        )
    return kind.job("generate")(ref, ollama_host=ollama_host)


# -- the generate job of each kind (see REF_KINDS) ------------------------------------------------------------
def embedded_generator(ref: EmbeddedRef, *, ollama_host: str | None = None) -> Generator:
    from bakeoff.models.embedded import ensure_imported
    from bakeoff.models.transformers_backend import TransformersGenerator

    return TransformersGenerator.from_path(ensure_imported(ref.name), name=str(ref))


def hf_generator(ref: HFRef, *, ollama_host: str | None = None) -> Generator:
    from bakeoff.models.transformers_backend import TransformersGenerator

    return TransformersGenerator.from_path(ref.path, name=str(ref))


def openai_compatible_generator(ref: OpenAICompatibleRef, *, ollama_host: str | None = None) -> Generator:
    from bakeoff.models.openai_compatible import OpenAICompatibleGenerator

    return OpenAICompatibleGenerator(ref.base_url, ref.model, key_env=ref.key_env)


def ollama_generator(ref: OllamaRef, *, ollama_host: str | None = None) -> Generator:
    from bakeoff.models.ollama_backend import OllamaGenerator

    return OllamaGenerator(ref.model, host=ollama_host)


def gguf_generator(ref: EmbeddedGGUFRef, *, ollama_host: str | None = None) -> Generator:
    from bakeoff.models.llama_cpp_backend import LlamaCppGenerator

    return LlamaCppGenerator(ref.path, name=str(ref))
