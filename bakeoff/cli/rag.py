"""``bakeoff index`` and ``bakeoff retrieve``: build a recipe's vector store and look inside it.

Registered on the main app by :func:`register`; heavy imports (chromadb, sentence-transformers) happen inside
the commands, so ``bakeoff --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bakeoff.cli._common import console, err, fail, load_recipe_or_exit

__all__ = ["index", "retrieve"]


def _index(recipe, console, *, reset: bool = False):
    """Sync a recipe's corpus into its store; print the counts and one warning line per skipped file."""
    from bakeoff.models.embeddings import EmbeddingError
    from bakeoff.rag.chroma import VectorStoreError
    from bakeoff.rag.indexing import index_corpus

    if recipe.corpus is None:
        raise fail(f"recipe {recipe.name!r} has no `corpus:`; add one, e.g. corpus: {{paths: [docs/]}}")
    try:
        store, report = index_corpus(
            corpus=recipe.corpus,
            base_dir=recipe.source_path.parent,
            embeddings=recipe.embeddings,
            recipe_name=recipe.name,
            chroma=recipe.chroma,
            console=console,
            reset=reset,
        )
    except (VectorStoreError, EmbeddingError) as exc:
        raise fail(str(exc)) from None
    return store, report


def index(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (with a `corpus:`).")],
    reset: Annotated[
        bool,
        typer.Option("--reset", help="Delete the collection and rebuild it (after changing `embeddings`)."),
    ] = False,
) -> None:
    """Read, chunk and embed the recipe's corpus into its Chroma collection (only new or changed chunks)."""

    r = load_recipe_or_exit(recipe)
    store, report = _index(r, console, reset=reset)
    console.print(report.summary_line(), highlight=False)
    if not report.documents:
        err.print(
            f"warning: no readable file matched corpus.paths {r.corpus.paths}",
            style="yellow",
            highlight=False,
        )
    for skipped in report.skipped:
        err.print(f"warning: skipped {skipped.source}: {skipped.reason}", style="yellow", highlight=False)
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)
    console.print(
        f"added {report.added}, removed {report.removed}, unchanged {report.unchanged} "
        f"in {report.seconds:.1f}s; collection {store.name!r} holds {report.collection_size} chunks "
        f"({store.where}, {store.embedder.name})",
        highlight=False,
    )


def retrieve(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file (with a `corpus:`).")],
    question: Annotated[str, typer.Argument(help="The question to retrieve passages for.")],
    candidate: Annotated[
        str | None,
        typer.Option("--candidate", "-c", help="Use this rag candidate's k, search and threshold."),
    ] = None,
    k: Annotated[
        int | None, typer.Option("-k", "--k", min=1, help="Number of chunks (overrides the candidate's).")
    ] = None,
) -> None:
    """Print the chunks a question retrieves, best first, with source, page, offsets and score."""
    from rich.markup import escape

    from bakeoff.models.embeddings import EmbeddingError, load_embedder
    from bakeoff.rag.chroma import VectorStoreError
    from bakeoff.rag.vectorstore import open_store

    r = load_recipe_or_exit(recipe)
    rag = [c for c in r.candidates if c.agent == "rag"]
    if candidate is not None:
        settings = next((c for c in rag if c.name == candidate), None)
        if settings is None:
            names = ", ".join(c.name for c in rag) or "none"
            raise fail(f"{candidate!r} is not a rag candidate of {r.name!r}; rag candidates: {names}")
    else:
        settings = rag[0] if rag else None
    if r.corpus is None:
        raise fail(f"recipe {r.name!r} has no `corpus:`; add one, e.g. corpus: {{paths: [docs/]}}")
    options = {"k": 4, "search": "similarity"}
    if settings is not None:
        options = {
            "k": settings.k,
            "search": settings.search,
            "fetch_k": settings.fetch_k,
            "mmr_lambda": settings.mmr_lambda,
            "score_threshold": settings.score_threshold,
        }
    if k is not None:
        options["k"] = k
        options["fetch_k"] = max(k, int(options.get("fetch_k", 20)))
    try:
        store = open_store(
            load_embedder(r.embeddings, r.ollama_host), recipe_name=r.name, spec=r.chroma, console=console
        )
        if store.count() == 0:
            console.print("[yellow]the collection is empty; indexing the corpus first[/]")
            store, _ = _index(r, console)
        [hits] = store.search([question], **options)
    except (VectorStoreError, EmbeddingError) as exc:
        raise fail(str(exc)) from None
    using = f"candidate {settings.name!r}: " if settings is not None else ""
    console.print(
        f"[bold]{len(hits)}[/] chunk(s) for {escape(repr(question))} ({using}k={options['k']}, "
        f"{options['search']}; {store.name}, {store.count()} chunks)"
    )
    for rank, hit in enumerate(hits, 1):
        page = f", page {hit.page}" if hit.page is not None else ""
        console.print(
            f"\n[bold cyan]#{rank}[/] score {hit.score:.3f}  [bold]{escape(hit.source)}[/]{page}, "
            f"chars {hit.start}-{hit.end}  [dim]{hit.id}[/]"
        )
        console.print(hit.text.strip(), markup=False, highlight=False)

