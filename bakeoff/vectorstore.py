"""The vector store: a recipe's corpus in a Chroma collection, kept in sync file by file.

Chroma runs embedded (a ``PersistentClient`` folder, by default ``$BAKEOFF_HOME/chroma/<recipe>``) or as a
server (``chroma: {host, port}`` in the recipe). bakeoff always passes vectors itself: Chroma's default
embedding function downloads a model at run time, so a collection is created without one.

The collection's metadata records the embedding model and its dimension; opening it with another model is an
error that names both, never a silent mix of vector spaces. :meth:`VectorStore.sync` mirrors the corpus: chunk
ids are content hashes, so an unchanged file costs no embedding, a changed file has its stale chunks deleted
and its new ones added, and a file gone from the corpus (or now unreadable) loses its chunks. Writes hold a
file lock, so two processes indexing the same store take turns.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bakeoff.fields import RecipePath

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.context import RunContext
    from bakeoff.corpus import Corpus, CorpusSpec, Skipped
    from bakeoff.embeddings import Embedder
    from bakeoff.models import ModelRef

__all__ = [
    "ChromaSpec",
    "Hit",
    "SyncReport",
    "VectorStore",
    "VectorStoreError",
    "collection_name",
    "index_corpus",
    "open_store",
    "run_index",
    "write_lock",
]

# Chunks embedded and written per step. Chroma's add has a high fixed cost per call: 256 per call wrote 1.9x
# faster than 64 (bench/bench_retrieval.py); the embedder still batches the model by its own batch_size
# within a step, and sorts the step's chunks by length first (less padding).
EMBED_BATCH = 256
WRITE_BATCH = 1000  # ids per Chroma get/delete/update call, well under its maximum batch size
LOCK_TIMEOUT_S = 3600.0


class VectorStoreError(Exception):
    """The store cannot be opened or used as asked; the message says what to do."""


class ChromaSpec(BaseModel):
    """Where the corpus' vectors live: an embedded Chroma folder (default) or a Chroma server."""

    model_config = ConfigDict(extra="forbid")

    path: RecipePath | None = Field(
        None,
        description="Folder of an embedded Chroma database, relative to the recipe. Default: "
        "`$BAKEOFF_HOME/chroma/<recipe name>`.",
    )
    host: str | None = Field(
        None, description="Host of a Chroma server (`chroma run`); when set, the server is used instead."
    )
    port: int = Field(8000, ge=1, le=65535, description="Port of the Chroma server.")
    ssl: bool = Field(False, description="Talk to the server over HTTPS.")
    collection: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._\-]{1,510}[A-Za-z0-9]$",
        description="Collection name (3-512 characters: letters, digits, `.`, `_`, `-`). Default: "
        "`bakeoff-<recipe name>`.",
    )

    @model_validator(mode="after")
    def _one_place(self) -> ChromaSpec:
        if self.path is not None and self.host is not None:
            raise ValueError("give either `path` (embedded Chroma) or `host` (a Chroma server), not both")
        return self


def collection_name(recipe_name: str) -> str:
    """The default collection name of a recipe (Chroma's naming rules: 3-512 chars, alphanumeric ends)."""
    name = re.sub(r"[^A-Za-z0-9._\-]", "-", f"bakeoff-{recipe_name}")
    name = re.sub(r"\.{2,}", ".", name).rstrip("._-")
    return name[:512]


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


@dataclass
class SyncReport:
    """What one :meth:`VectorStore.sync` found and changed."""

    documents: int = 0
    chunks: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    updated: int = 0  # same text, new offsets (text moved inside an edited file): metadata rewritten
    unchanged: int = 0
    changed_sources: list[str] = field(default_factory=list)
    removed_sources: list[str] = field(default_factory=list)
    collection_size: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary_line(self) -> str:
        return f"documents: {self.documents}, chunks: {self.chunks}, skipped: {len(self.skipped)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "skipped": len(self.skipped),
            "skipped_files": [{"source": s.source, "reason": s.reason} for s in self.skipped],
            "added": self.added,
            "removed": self.removed,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "changed_sources": self.changed_sources,
            "removed_sources": self.removed_sources,
            "collection_size": self.collection_size,
            "index_s": round(self.seconds, 3),
        }


def _client(spec: ChromaSpec | None, recipe_name: str) -> tuple[Any, str, Path]:
    """A Chroma client, a description of where it points, and the write-lock file."""
    from bakeoff import paths

    try:
        import chromadb
        from chromadb.config import Settings
    except ImportError:
        raise VectorStoreError("RAG needs chromadb: pip install 'chromadb>=1.0'") from None
    settings = Settings(anonymized_telemetry=False)
    spec = spec or ChromaSpec()
    locks = paths.home() / "chroma"
    if spec.host:
        scheme = "https" if spec.ssl else "http"
        where = f"Chroma server {scheme}://{spec.host}:{spec.port}"
        try:
            client = chromadb.HttpClient(host=spec.host, port=spec.port, ssl=spec.ssl, settings=settings)
            client.heartbeat()
        except Exception as exc:  # connection refused, DNS, TLS: all mean "not reachable"
            raise VectorStoreError(
                f"cannot reach the {where} ({type(exc).__name__}: {exc}); start it (`chroma run --port "
                f"{spec.port}`) or remove `chroma.host` from the recipe to use an embedded store"
            ) from None
        # The lock only orders writers on this machine; a shared server also sees other machines' writes.
        lock = locks / "locks" / re.sub(r"[^A-Za-z0-9._\-]", "_", f"{spec.host}_{spec.port}.lock")
        return client, where, lock
    folder = Path(spec.path) if spec.path else locks / recipe_name
    folder.mkdir(parents=True, exist_ok=True)
    try:
        client = chromadb.PersistentClient(path=str(folder), settings=settings)
    except Exception as exc:
        raise VectorStoreError(
            f"cannot open the Chroma folder {folder}: {type(exc).__name__}: {exc}"
        ) from None
    return client, f"embedded Chroma at {folder}", folder.with_name(folder.name + ".lock")


@contextlib.contextmanager
def write_lock(
    lock_path: Path, console: Console | None = None, timeout_s: float = LOCK_TIMEOUT_S
) -> Iterator[None]:
    """Hold the store's write lock; while another process holds it, say which one and wait.

    Raises:
        VectorStoreError: the lock was not released within ``timeout_s``.
    """
    from filelock import FileLock, Timeout

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    owner = lock_path.with_name(lock_path.name + ".pid")
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        holder = _read_owner(owner)
        message = f"waiting for lock {lock_path} held by {holder} (another bakeoff writing this store)"
        if console is not None:
            console.print(f"[yellow]{message}[/]")
        try:
            lock.acquire(timeout=timeout_s)
        except Timeout:
            raise VectorStoreError(
                f"gave up after {timeout_s:.0f}s waiting for lock {lock_path} held by {_read_owner(owner)}"
            ) from None
    try:
        owner.write_text(f"{os.getpid()}\n", encoding="utf-8")
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()


def _read_owner(owner: Path) -> str:
    try:
        pid = owner.read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    return f"PID {pid}" if pid else "another process"


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

    # -- writing ---------------------------------------------------------------------------------------

    def _stored(self) -> dict[str, dict[str, Any]]:
        """id -> metadata of every stored chunk (read in pages: Chroma bounds the size of one request)."""
        out: dict[str, dict[str, Any]] = {}
        page = WRITE_BATCH
        offset = 0
        while True:
            got = self.collection.get(include=["metadatas"], limit=page, offset=offset)
            for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
                out[cid] = dict(meta or {})
            if len(got["ids"]) < page:
                return out
            offset += page

    def sync(
        self,
        corpus: Corpus,
        *,
        console: Console | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> SyncReport:
        """Make the collection hold exactly the corpus' chunks, embedding only what is new.

        Args:
            corpus: the loaded, chunked corpus.
            console: where a "waiting for lock" message goes.
            progress: called as ``progress(embedded, to_embed)`` after each batch.

        Returns:
            What was added, removed and kept.
        """
        started = time.perf_counter()
        report = SyncReport(
            documents=len(corpus.files),
            chunks=len(corpus.chunks),
            skipped=list(corpus.skipped),
            notes=list(corpus.notes),
        )
        wanted = {c.id: c for c in corpus.chunks}
        with write_lock(self.lock_path, console):
            stored = self._stored()
            stale = [cid for cid in stored if cid not in wanted]
            new = [c for c in corpus.chunks if c.id not in stored]
            moved = [c for c in corpus.chunks if c.id in stored and stored[c.id] != c.metadata()]
            report.changed_sources = sorted(
                {c.source for c in new} | {str(stored[i].get("source")) for i in stale}
            )
            report.removed_sources = sorted(
                {str(stored[i].get("source")) for i in stale} - {c.source for c in corpus.chunks}
            )
            if stale:
                for batch in _batches(stale, WRITE_BATCH):
                    self.collection.delete(ids=batch)
            if moved:
                for batch in _batches(moved, WRITE_BATCH):
                    self.collection.update(ids=[c.id for c in batch], metadatas=[c.metadata() for c in batch])
            done = 0
            if progress:
                progress(0, len(new))
            for batch in _batches(new, EMBED_BATCH):
                vectors = self.embedder.embed([c.text for c in batch])
                self.collection.add(
                    ids=[c.id for c in batch],
                    embeddings=vectors,
                    documents=[c.text for c in batch],
                    metadatas=[c.metadata() for c in batch],
                )
                done += len(batch)
                if progress:
                    progress(done, len(new))
            report.added, report.removed, report.updated = len(new), len(stale), len(moved)
            report.unchanged = len(wanted) - len(new)
            report.collection_size = self.count()
        report.seconds = time.perf_counter() - started
        return report

    # -- reading ---------------------------------------------------------------------------------------

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


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


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

    client, where, lock_path = _client(spec, recipe_name)
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


def index_corpus(
    *,
    corpus: CorpusSpec,
    base_dir: Path,
    embeddings: ModelRef,
    recipe_name: str,
    chroma: ChromaSpec | None = None,
    console: Console | None = None,
    reset: bool = False,
) -> tuple[VectorStore, SyncReport]:
    """Read, chunk and embed a recipe's corpus into its collection, with a progress bar.

    Args:
        corpus: the recipe's ``corpus:`` block.
        base_dir: the recipe's folder (corpus paths and chunk sources are relative to it).
        embeddings: the recipe's embedding model.
        recipe_name: names the default store folder and collection.
        chroma: the recipe's ``chroma:`` block.
        console: where the progress bar and lock messages go (None: quiet).
        reset: rebuild the collection from scratch.

    Raises:
        VectorStoreError, EmbeddingError: the store or the embedding model cannot be used.
    """
    from rich.console import Console

    from bakeoff.corpus import load_corpus
    from bakeoff.embeddings import load_embedder
    from bakeoff.runner import progress_bar

    console = console or Console(quiet=True)
    embedder = load_embedder(embeddings)
    tokenizer = getattr(embedder, "tokenizer", None)
    if corpus.chunk.unit == "tokens" and tokenizer is None:
        raise VectorStoreError(
            f"chunk.unit 'tokens' needs the embedding model's tokenizer, which {embedder.name} does not expose; "
            "use chunk.unit 'chars' or a local (embedded: / hf:) embedding model"
        )
    store = open_store(embedder, recipe_name=recipe_name, spec=chroma, console=console, reset=reset)
    with progress_bar(console) as bar:
        files = bar.add_task("read corpus", total=None)
        loaded = load_corpus(
            corpus,
            base_dir,
            tokenizer=tokenizer,
            progress=lambda done, total: bar.update(files, completed=done, total=total),
        )
        embed = bar.add_task("embed chunks", total=None)
        report = store.sync(
            loaded,
            console=console,
            progress=lambda done, total: bar.update(embed, completed=done, total=total),
        )
    return store, report


def run_index(ctx: RunContext) -> VectorStore:
    """The run's vector store, synced with the corpus once per run and shared by its RAG candidates.

    What indexing found goes to the manifest (``corpus``) and each skipped file becomes a note.
    """
    key = "bakeoff.vectorstore"
    if key in ctx.resources:
        return ctx.resources[key]
    if ctx.corpus is None:
        raise VectorStoreError(f"recipe {ctx.recipe_name!r} has no `corpus:` to index")
    store, report = index_corpus(
        corpus=ctx.corpus,
        base_dir=ctx.recipe_dir,
        embeddings=ctx.embeddings or _default_embeddings(),
        recipe_name=ctx.recipe_name,
        chroma=ctx.chroma,
        console=ctx.console,
    )
    ctx.console.print(
        f"corpus: {report.summary_line()} (added {report.added}, removed {report.removed}, "
        f"unchanged {report.unchanged}) in {report.seconds:.1f}s → {store.where}, collection {store.name}"
    )
    for skipped in report.skipped:
        ctx.note(f"corpus: skipped {skipped.source}: {skipped.reason}")
    if not report.documents:
        ctx.note(f"corpus: no readable file matched {ctx.corpus.paths}; rag candidates retrieve nothing")
    ctx.manifest["corpus"] = {**report.to_dict(), "store": store.where, "collection": store.name}
    ctx.resources[key] = store
    return store


def _default_embeddings() -> ModelRef:
    from bakeoff.models import EmbeddedRef

    return EmbeddedRef("all-minilm-l6-v2")
