"""``bakeoff run``, ``bakeoff runs``, ``bakeoff show`` and ``bakeoff chat``: run a recipe and read its runs."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from bakeoff.cli._common import DEFAULT_RUNS, RunsDir, console, err, load_recipe_or_exit

__all__ = ["chat", "run", "runs", "show"]


def run(
    recipe: Annotated[Path | None, typer.Argument(help="Recipe YAML file (omit with --resume).")] = None,
    only: Annotated[
        list[str] | None, typer.Option("--only", help="Candidate names to run (comma-separated; repeatable).")
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume", metavar="RUN", help="Finish an interrupted or failed run, reusing finished work."
        ),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS,
    retrain: Annotated[
        bool,
        typer.Option("--retrain", help="Train fine-tuned candidates again, ignoring the training cache."),
    ] = False,
) -> None:
    """Prepare, train, answer and score every candidate; write a run and print the comparison."""
    from bakeoff.eval.table import print_scores
    from bakeoff.run.runner import RunError, run_recipe
    from bakeoff.run.store import RunStoreError, find_run, read_run

    resume_dir = None
    if resume is not None:
        try:
            prior = find_run(runs_dir, resume)
        except RunStoreError as exc:
            err.print(f"error: {exc}", style="red")
            raise typer.Exit(2) from None
        if prior.status in ("complete", "running"):
            err.print(f"error: run {prior.run_id} is {prior.status}; nothing to resume", style="red")
            raise typer.Exit(2)
        resume_dir = prior.path
        # the recipe as it was run, with relative paths resolved against its original folder
        original = Path(prior.manifest_document.recipe_path or (prior.path / "recipe.yaml"))
        text = (prior.path / "recipe.yaml").read_text(encoding="utf-8")
        r = load_recipe_or_exit(original, text=text)
        only = only or prior.manifest_document.answering
    elif recipe is None:
        err.print("error: give a RECIPE, or --resume RUN", style="red")
        raise typer.Exit(2)
    else:
        r = load_recipe_or_exit(recipe)
        text = recipe.read_text(encoding="utf-8")
    try:
        path = run_recipe(
            r,
            recipe_text=text,
            runs_dir=runs_dir,
            only=only,
            console=console,
            resume=resume_dir,
            retrain=retrain,
        )
    except RunError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted; the run is marked failed", style="red")
        raise typer.Exit(130) from None
    except Exception as exc:
        from bakeoff.errors import BakeoffError

        if not isinstance(exc, BakeoffError):
            raise  # a bug, not a condition the message can explain: keep the traceback
        _report_failed_run(exc, runs_dir, r.name)
        raise typer.Exit(1) from None
    info = read_run(path)
    print_scores(console, info.scores_document, title=f"{info.recipe} · {info.run_id}")
    console.print(f"run written to {path}  (bakeoff show {info.run_id})", soft_wrap=True)
    from bakeoff.eval.failures import failure_sentences

    failures = failure_sentences(info.scores_document)
    for sentence in failures:
        err.print(f"error: {sentence}", style="red", soft_wrap=True, markup=False)
    if failures:
        err.print(f"run {info.run_id} is {info.status}; `bakeoff run --resume {info.run_id}` asks again")
        raise typer.Exit(1)


def _report_failed_run(exc: Exception, runs_dir: Path, recipe_name: str) -> None:
    """One error message (no traceback) for a run that stopped on a known condition (out of memory, an
    unreachable server, ...), and how to finish it."""
    from bakeoff.run.store import list_runs

    err.print(f"error: {exc}", style="red", soft_wrap=True)
    mine = [i for i in list_runs(runs_dir, recipe_name) if i.manifest_document.pid == os.getpid()]
    if mine:
        err.print(
            f"run {mine[0].run_id} is marked failed; finished work is kept: `bakeoff run --resume "
            f"{mine[0].run_id}` continues it, or run the edited recipe again (training resumes from its "
            "checkpoint while its train settings are unchanged)",
            soft_wrap=True,
        )


def runs(
    recipe: Annotated[str | None, typer.Option("--recipe", help="Only runs of this recipe.")] = None,
    runs_dir: RunsDir = DEFAULT_RUNS,
) -> None:
    """List runs, newest first."""
    from rich.table import Table

    from bakeoff.run.store import list_runs

    runs = list_runs(runs_dir, recipe)
    if not runs:
        console.print(f"no runs in {runs_dir}")
        return
    table = Table()
    table.add_column("run", no_wrap=True, overflow="fold")  # users copy it into --resume / export
    table.add_column("recipe", overflow="fold")
    table.add_column("status", min_width=8, overflow="fold")
    table.add_column("started", no_wrap=True)
    table.add_column("candidates")
    colors = {
        "complete": "green",
        "partial": "yellow",
        "failed": "red",
        "running": "yellow",
        "interrupted": "red",
        "unreadable": "red",
    }
    for info in runs:
        status = info.status + (f" ({info.problem})" if info.problem else "")
        table.add_row(
            info.run_id,
            info.recipe,
            f"[{colors.get(info.status, 'white')}]{status}[/]",
            (info.manifest_document.started_at or "")[:16].replace("T", " "),
            ", ".join(info.candidates),
        )
    console.print(table)


def show(
    run_ref: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="Run id (prefix), recipe name (its latest run), 'latest' or a run folder."
        ),
    ] = "latest",
    metric: Annotated[
        str | None,
        typer.Option("--metric", help="Paired comparisons for this metric (default: the headline)."),
    ] = None,
    errors: Annotated[
        bool,
        typer.Option(
            "--errors", help="Also print why answers failed (counts per cause) and lost and all-fail questions."
        ),
    ] = False,
    by_source: Annotated[
        bool,
        typer.Option(
            "--by-source", help="Also print the headline per source document (and per `eval.slice_by` field)."
        ),
    ] = False,
    runs_dir: RunsDir = DEFAULT_RUNS,
) -> None:
    """Print a run's scores with intervals, paired comparisons (significant ones marked) and judge stats."""
    from bakeoff.eval.table import classification_tables, print_scores
    from bakeoff.run.store import RunStoreError, find_run

    try:
        info = find_run(runs_dir, run_ref)
    except RunStoreError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from None
    if info.problem:
        err.print(f"error: run {info.path} is unreadable: {info.problem}", style="red")
        raise typer.Exit(1)
    console.print(f"{info.recipe} · {info.run_id} · [bold]{info.status}[/]")
    if not info.scores:
        console.print("no scores yet (the run did not finish)")
        return
    print_scores(console, info.scores_document, metric=metric, errors=errors, by_source=by_source)
    if info.scores_document.task == "classification":
        for table in classification_tables(info.scores_document):
            console.print(table)


def chat(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
    candidate: Annotated[str, typer.Argument(help="Candidate name.")],
) -> None:
    """Chat with one candidate in the terminal (history kept for the session; /reset clears it, /quit ends)."""
    r = load_recipe_or_exit(recipe)
    from bakeoff.run.runner import RunError, build_agents, make_context, select_candidates

    try:
        _, needed = select_candidates(r, [candidate])
    except RunError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from None
    ctx = make_context(r, console)
    agents = build_agents(needed, ctx)
    for cand in needed:
        agents[cand.name].prepare()
    agent = agents[candidate]
    history: list[dict[str, str]] = []
    console.print(f"chatting with [bold]{candidate}[/] ({agent.settings.agent}); /reset, /quit")
    while True:
        try:
            text = console.input("[bold cyan]you>[/] ").strip()
        except (EOFError, KeyboardInterrupt):
            console.print()
            break
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history.clear()
            console.print("[dim]history cleared[/]")
            continue
        if not text:
            continue
        history.append({"role": "user", "content": text})
        console.print(f"[bold magenta]{candidate}>[/] ", end="")
        reply = ""
        try:
            for piece in agent.chat(history):
                reply += piece
                console.print(piece, end="", markup=False, highlight=False)
        except NotImplementedError as exc:
            err.print(f"\nerror: {exc}", style="red")
            raise typer.Exit(2) from None
        console.print()
        history.append({"role": "assistant", "content": reply})
