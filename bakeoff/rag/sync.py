"""Keeping a store in sync with the corpus, file by file: chunk ids are content hashes, so an unchanged file
costs no embedding, a changed file has its stale chunks deleted and its new ones added, and a file gone from the
corpus (or now unreadable) loses its chunks. Writes hold the store's write lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bakeoff.rag.chroma import write_lock
from bakeoff.rag.corpus import Corpus, Skipped

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.rag.corpus import Chunk, CorpusFile
    from bakeoff.rag.vectorstore import VectorStore

__all__ = ["EMBED_BATCH", "WRITE_BATCH", "SyncReport", "sync_store"]

# Chunks embedded and written per step. Chroma's add has a high fixed cost per call: 256 per call wrote 1.9x
# faster than 64 (bench/bench_retrieval.py); the embedder still batches the model by its own batch_size
# within a step, and sorts the step's chunks by length first (less padding).
EMBED_BATCH = 256
WRITE_BATCH = 1000  # ids per Chroma get/delete/update call, well under its maximum batch size


@dataclass
class SyncReport:
    """What one sync (:meth:`VectorStore.sync <bakeoff.rag.vectorstore.VectorStore.sync>`) found and changed."""

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


def sync_store(
    store: VectorStore,
    corpus: Corpus | Iterable[CorpusFile],
    *,
    console: Console | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> SyncReport:
    """Make the store's collection hold exactly the corpus' chunks, embedding only what is new.

    The corpus is consumed file by file (pass :func:`bakeoff.rag.corpus.iter_corpus` to stream one larger than
    memory): each file's new chunks are embedded and added in batches of ``EMBED_BATCH`` as it is read, and
    only chunk ids are kept across files. Chunks of files no longer in the corpus are deleted at the end.

    Args:
        store: the store to write.
        corpus: the loaded corpus, or its files one at a time.
        console: where a "waiting for lock" message goes.
        progress: called as ``progress(embedded, to_embed)`` after each batch; ``to_embed`` is None until
            the whole corpus has been read.

    Returns:
        What was added, removed and kept.
    """
    started = time.perf_counter()
    report = SyncReport()
    if isinstance(corpus, Corpus):
        report.notes = list(corpus.notes)
        files: Iterable[CorpusFile] = corpus.by_file()
    else:
        files = corpus
    with write_lock(store.lock_path, console):
        mirror = _Mirror(store, report, progress, note_files=not isinstance(corpus, Corpus))
        for item in files:
            mirror.add_file(item)
        mirror.finish()
    report.seconds = time.perf_counter() - started
    return report


class _Mirror:
    """One sync under the write lock: what is stored, what the corpus wants, and the chunks waiting to be
    embedded."""

    def __init__(
        self,
        store: VectorStore,
        report: SyncReport,
        progress: Callable[[int, int | None], None] | None,
        note_files: bool,
    ) -> None:
        self.store = store
        self.collection = store.collection
        self.report = report
        self.progress = progress
        self.note_files = note_files  # a streamed corpus' notes come with its files
        self.stored = _stored(self.collection)  # ids and metadata only: no texts, no vectors
        self.wanted: set[str] = set()
        self.new_sources: set[str] = set()
        self.present: set[str] = set()  # sources with chunks in the corpus
        self.pending: list[Chunk] = []
        if progress:
            progress(0, None)

    def add_file(self, item: CorpusFile) -> None:
        """Note a file's chunks: new ones wait to be embedded, moved ones get their metadata rewritten."""
        report = self.report
        if item.skipped is not None:
            report.skipped.append(Skipped(item.source, item.skipped))
            return
        report.documents += 1
        report.chunks += len(item.chunks)
        if item.note and self.note_files:
            report.notes.append(f"{item.source}: {item.note}")
        moved = []
        for chunk in item.chunks:
            self.wanted.add(chunk.id)
            self.present.add(chunk.source)
            meta = self.stored.get(chunk.id)
            if meta is None:
                self.pending.append(chunk)
                self.new_sources.add(chunk.source)
            elif meta != chunk.metadata():
                moved.append(chunk)
        for batch in _batches(moved, WRITE_BATCH):
            self.collection.update(ids=[c.id for c in batch], metadatas=[c.metadata() for c in batch])
        report.updated += len(moved)
        while len(self.pending) >= EMBED_BATCH:
            self._embed(self.pending[:EMBED_BATCH])
            del self.pending[:EMBED_BATCH]

    def finish(self) -> None:
        """Embed what is left, delete the chunks the corpus no longer has, and fill in the report."""
        report = self.report
        if self.pending:
            self._embed(self.pending)
        stale = [cid for cid in self.stored if cid not in self.wanted]
        for batch in _batches(stale, WRITE_BATCH):
            self.collection.delete(ids=batch)
        stale_sources = {str(self.stored[i].get("source")) for i in stale}
        report.removed = len(stale)
        report.unchanged = len(self.wanted) - report.added
        report.changed_sources = sorted(self.new_sources | stale_sources)
        report.removed_sources = sorted(stale_sources - self.present)
        report.collection_size = self.store.count()
        if self.progress:
            self.progress(report.added, report.added)

    def _embed(self, chunks: list[Chunk]) -> None:
        vectors = self.store.embedder.embed([c.text for c in chunks])
        self.collection.add(
            ids=[c.id for c in chunks],
            embeddings=vectors,
            documents=[c.text for c in chunks],
            metadatas=[c.metadata() for c in chunks],
        )
        self.report.added += len(chunks)
        if self.progress:
            self.progress(self.report.added, None)


def _stored(collection: Any) -> dict[str, dict[str, Any]]:
    """id -> metadata of every stored chunk (read in pages: Chroma bounds the size of one request)."""
    out: dict[str, dict[str, Any]] = {}
    page = WRITE_BATCH
    offset = 0
    while True:
        got = collection.get(include=["metadatas"], limit=page, offset=offset)
        for cid, meta in zip(got["ids"], got["metadatas"] or [], strict=False):
            out[cid] = dict(meta or {})
        if len(got["ids"]) < page:
            return out
        offset += page


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
