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
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bakeoff.errors import BakeoffError
from bakeoff.recipe.fields import RecipePath

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.models.embeddings import Embedder
    from bakeoff.models.refs import ModelRef
    from bakeoff.rag.corpus import Chunk, Corpus, CorpusFile, CorpusSpec, Skipped
    from bakeoff.run.context import RunContext

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


class VectorStoreError(BakeoffError):
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
    from bakeoff.locks import LockTimeout, held_lock

    def waiting(holder: str) -> None:
        if console is not None:
            console.print(
                f"[yellow]waiting for lock {lock_path} held by {holder} (another bakeoff writing this store)[/]",
                soft_wrap=True,  # one line: scripts and tests grep it
            )

    try:
        with held_lock(lock_path, on_wait=waiting, timeout_s=timeout_s):
            yield
    except LockTimeout as exc:
        raise VectorStoreError(str(exc)) from None


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
        corpus: Corpus | Iterable[CorpusFile],
        *,
        console: Console | None = None,
        progress: Callable[[int, int | None], None] | None = None,
    ) -> SyncReport:
        """Make the collection hold exactly the corpus' chunks, embedding only what is new.

        The corpus is consumed file by file (pass :func:`bakeoff.rag.corpus.iter_corpus` to stream one larger than
        memory): each file's new chunks are embedded and added in batches of ``EMBED_BATCH`` as it is read, and
        only chunk ids are kept across files. Chunks of files no longer in the corpus are deleted at the end.

        Args:
            corpus: the loaded corpus, or its files one at a time.
            console: where a "waiting for lock" message goes.
            progress: called as ``progress(embedded, to_embed)`` after each batch; ``to_embed`` is None until
                the whole corpus has been read.

        Returns:
            What was added, removed and kept.
        """
        from bakeoff.rag.corpus import Corpus, Skipped

        started = time.perf_counter()
        report = SyncReport()
        if isinstance(corpus, Corpus):
            report.notes = list(corpus.notes)
            files: Iterable[CorpusFile] = corpus.by_file()
        else:
            files = corpus
        wanted: set[str] = set()
        new_sources: set[str] = set()
        present: set[str] = set()  # sources with chunks in the corpus
        pending: list[Chunk] = []

        def embed(chunks: list[Chunk]) -> None:
            vectors = self.embedder.embed([c.text for c in chunks])
            self.collection.add(
                ids=[c.id for c in chunks],
                embeddings=vectors,
                documents=[c.text for c in chunks],
                metadatas=[c.metadata() for c in chunks],
            )
            report.added += len(chunks)
            if progress:
                progress(report.added, None)

        with write_lock(self.lock_path, console):
            stored = self._stored()  # ids and metadata only: no texts, no vectors
            if progress:
                progress(0, None)
            for item in files:
                if item.skipped is not None:
                    report.skipped.append(Skipped(item.source, item.skipped))
                    continue
                report.documents += 1
                report.chunks += len(item.chunks)
                if item.note and not isinstance(corpus, Corpus):
                    report.notes.append(f"{item.source}: {item.note}")
                moved = []
                for chunk in item.chunks:
                    wanted.add(chunk.id)
                    present.add(chunk.source)
                    meta = stored.get(chunk.id)
                    if meta is None:
                        pending.append(chunk)
                        new_sources.add(chunk.source)
                    elif meta != chunk.metadata():
                        moved.append(chunk)
                for batch in _batches(moved, WRITE_BATCH):
                    self.collection.update(ids=[c.id for c in batch], metadatas=[c.metadata() for c in batch])
                report.updated += len(moved)
                while len(pending) >= EMBED_BATCH:
                    embed(pending[:EMBED_BATCH])
                    del pending[:EMBED_BATCH]
            if pending:
                embed(pending)
            stale = [cid for cid in stored if cid not in wanted]
            for batch in _batches(stale, WRITE_BATCH):
                self.collection.delete(ids=batch)
            stale_sources = {str(stored[i].get("source")) for i in stale}
            report.removed = len(stale)
            report.unchanged = len(wanted) - report.added
            report.changed_sources = sorted(new_sources | stale_sources)
            report.removed_sources = sorted(stale_sources - present)
            report.collection_size = self.count()
            if progress:
                progress(report.added, report.added)
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
    ollama_host: str | None = None,
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
        ollama_host: the recipe's Ollama server, for ``ollama:`` embeddings (else ``OLLAMA_HOST``).

    Raises:
        VectorStoreError, EmbeddingError: the store or the embedding model cannot be used.
    """
    from rich.console import Console

    from bakeoff.models.embeddings import load_embedder
    from bakeoff.progress import progress_bar
    from bakeoff.rag.corpus import iter_corpus

    console = console or Console(quiet=True)
    embedder = load_embedder(embeddings, ollama_host)
    tokenizer = getattr(embedder, "tokenizer", None)
    if corpus.chunk.unit == "tokens" and tokenizer is None:
        raise VectorStoreError(
            f"chunk.unit 'tokens' needs the embedding model's tokenizer, which {embedder.name} does not expose; "
            "use chunk.unit 'chars' or a local (embedded: / hf:) embedding model"
        )
    store = open_store(embedder, recipe_name=recipe_name, spec=chroma, console=console, reset=reset)
    with progress_bar(console) as bar:
        files = bar.add_task("read corpus", total=None)
        embed = bar.add_task("embed new chunks", total=None)
        # Streamed: each file is read, chunked and its new chunks embedded before the next file is read.
        report = store.sync(
            iter_corpus(
                corpus,
                base_dir,
                tokenizer=tokenizer,
                progress=lambda done, total: bar.update(files, completed=done, total=total),
            ),
            console=console,
            progress=lambda done, total: bar.update(embed, completed=done, total=total),
        )
    return store, report


def run_index(ctx: RunContext) -> VectorStore:
    """The run's vector store, synced with the corpus once per run and shared by its RAG candidates.

    What indexing found goes to the manifest (``corpus``) and each skipped file becomes a note.
    """
    key = "bakeoff.rag.vectorstore"
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
        ollama_host=ctx.ollama_host,
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
    from bakeoff.models.refs import DEFAULT_EMBEDDINGS

    return DEFAULT_EMBEDDINGS
