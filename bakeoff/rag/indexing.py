"""Indexing a recipe's corpus: read, chunk and embed it into its store with a progress bar, and the store a
run shares between its RAG candidates (synced once per run, what it found written to the manifest)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bakeoff.rag.chroma import VectorStoreError
from bakeoff.rag.vectorstore import VectorStore, open_store

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.models.refs import ModelRef
    from bakeoff.rag.chroma import ChromaSpec
    from bakeoff.rag.corpus import CorpusSpec
    from bakeoff.rag.sync import SyncReport
    from bakeoff.run.context import RunContext

__all__ = ["index_corpus", "run_index"]


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
