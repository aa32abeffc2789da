"""The vector store: a recipe's corpus in a Chroma collection, searched by cosine similarity or MMR.

Chroma runs embedded (a ``PersistentClient`` folder, by default ``$BAKEOFF_HOME/chroma/<recipe>``) or as a
server (``chroma: {host, port}`` in the recipe; :mod:`bakeoff.rag.chroma`). bakeoff always passes vectors
itself: Chroma's default embedding function downloads a model at run time, so a collection is created without
one.

The collection's metadata records the embedding model and its dimension; opening it with another model is an
error that names both, never a silent mix of vector spaces. :meth:`VectorStore.sync` mirrors the corpus file by
file (:mod:`bakeoff.rag.sync`); indexing a recipe's corpus with a progress bar, and the store a run shares
between its RAG candidates, are :mod:`bakeoff.rag.indexing`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bakeoff.rag.chroma import ChromaSpec, VectorStoreError, collection_name, connect, write_lock
from bakeoff.rag.sync import SyncReport, sync_store

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.models.embeddings import Embedder
    from bakeoff.rag.corpus import Corpus, CorpusFile

__all__ = ["Hit", "VectorStore", "open_store"]


@dataclass
class Hit:
    """One retrieved chunk; ``score`` is the cosine similarity to the query (higher is closer)."""

    id: str
    text: str
    source: str
    start: int
    end: int
    score: float
    page: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "text": self.text,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "score": round(self.score, 6),
        }
        if self.page is not None:
            out["page"] = self.page
        return out


class VectorStore:
    """One Chroma collection holding one recipe's corpus, embedded by one model."""

    def __init__(self, collection: Any, embedder: Embedder, where: str, lock_path: Path) -> None:
        self.collection = collection
        self.embedder = embedder
        self.where = where
        self.lock_path = lock_path

    @property
    def name(self) -> str:
        return self.collection.name

    def count(self) -> int:
        return int(self.collection.count())

    def sync(
        self,
        corpus: Corpus | Iterable[CorpusFile],
        *,
        console: Console | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> SyncReport:
        """Make the collection hold exactly the corpus' chunks, embedding only what is new
        (:func:`bakeoff.rag.sync.sync_store`: the corpus is consumed file by file; pass
        :func:`bakeoff.rag.corpus.iter_corpus` to stream one larger than memory).

        Args:
            corpus: the loaded corpus, or its files one at a time.
            console: where a "waiting for lock" message goes.
            progress: called as ``progress(embedded, to_embed)`` after each batch; ``to_embed`` is None until
                the whole corpus has been read.

        Returns:
            What was added, removed and kept.
        """
        return sync_store(self, corpus, console=console, progress=progress)

    def search(
        self,
        queries: Sequence[str],
        *,
        k: int = 4,
        search: Literal["similarity", "mmr"] = "similarity",
        fetch_k: int = 20,
        mmr_lambda: float = 0.5,
        score_threshold: float | None = None,
    ) -> list[list[Hit]]:
        """The top chunks for each query, best first.

        Args:
            queries: the questions.
            k: chunks returned per query.
            search: ``similarity`` (nearest k) or ``mmr`` (maximal marginal relevance over the nearest
                ``fetch_k``: relevant but not redundant).
            fetch_k: candidates MMR picks from.
            mmr_lambda: MMR trade-off, 1 = pure relevance, 0 = pure diversity.
            score_threshold: drop chunks whose cosine similarity is below this.
        """
        if not queries:
            return []
        size = self.count()
        if size == 0:
            return [[] for _ in queries]
        vectors = self.embedder.embed(list(queries))
        n = min(size, max(k, fetch_k) if search == "mmr" else k)
        include = ["documents", "metadatas", "distances"] + (["embeddings"] if search == "mmr" else [])
        got = self.collection.query(query_embeddings=vectors, n_results=n, include=include)
        results = []
        for qi, qvec in enumerate(vectors):
            hits = [
                Hit(
                    id=cid,
                    text=doc or "",
                    source=str(meta.get("source", "")),
                    start=int(meta.get("start", -1)),
                    end=int(meta.get("end", -1)),
                    page=int(meta["page"]) if meta.get("page") is not None else None,
                    score=1.0 - float(dist),  # cosine distance -> cosine similarity
                )
                for cid, doc, meta, dist in zip(
                    got["ids"][qi],
                    got["documents"][qi],
                    got["metadatas"][qi],
                    got["distances"][qi],
                    strict=True,
                )
            ]
            if search == "mmr" and hits:
                import numpy as np
                from langchain_core.vectorstores.utils import maximal_marginal_relevance

                picked = maximal_marginal_relevance(
                    np.asarray(qvec), list(got["embeddings"][qi]), lambda_mult=mmr_lambda, k=k
                )
                hits = [hits[i] for i in picked]
            else:
                hits = hits[:k]
            if score_threshold is not None:
                hits = [h for h in hits if h.score >= score_threshold]
            results.append(hits)
        return results


def open_store(
    embedder: Embedder,
    *,
    recipe_name: str,
    spec: ChromaSpec | None = None,
    console: Console | None = None,
    reset: bool = False,
) -> VectorStore:
    """Open (creating if needed) a recipe's collection, checking that it was built with ``embedder``.

    Args:
        embedder: the recipe's embedding model.
        recipe_name: names the default folder and collection.
        spec: the recipe's ``chroma:`` block (None: embedded, default folder).
        console: where a "waiting for lock" message goes.
        reset: delete the collection first (after changing the embedding model).

    Raises:
        VectorStoreError: chromadb missing, server unreachable, or the collection holds vectors of another
            embedding model (the message names both models and the fix).
    """
    from chromadb.errors import NotFoundError

    client, where, lock_path = connect(spec, recipe_name)
    name = (spec.collection if spec else None) or collection_name(recipe_name)
    dimension = _dimension(embedder)
    if reset:
        with write_lock(lock_path, console), contextlib.suppress(NotFoundError):
            client.delete_collection(name)
    try:
        collection = client.get_collection(name, embedding_function=None)
    except NotFoundError:
        with write_lock(lock_path, console):
            collection = client.get_or_create_collection(
                name,
                configuration={"hnsw": {"space": "cosine"}},
                metadata={"embedding_model": embedder.name, "embedding_dimension": dimension},
                embedding_function=None,  # never Chroma's default: it downloads a model
            )
    meta = collection.metadata or {}
    built_with, built_dim = meta.get("embedding_model"), meta.get("embedding_dimension")
    if built_with != embedder.name or (built_dim and dimension and int(built_dim) != dimension):
        raise VectorStoreError(
            f"collection {name!r} in the {where} holds vectors from {built_with or 'an unknown model'} "
            f"({built_dim or '?'} dimensions), but this recipe embeds with {embedder.name} ({dimension or '?'} "
            f"dimensions); vectors from different models cannot be compared. Rebuild it with "
            f"`bakeoff index RECIPE --reset`, or set `chroma: {{collection: NEW_NAME}}` in the recipe to keep both"
        )
    return VectorStore(collection, embedder, where, lock_path)


def _dimension(embedder: Embedder) -> int:
    """The embedder's vector size (Ollama models only know it after a first call)."""
    if not embedder.dimension:
        embedder.embed(["dimension probe"])
    return int(embedder.dimension)
