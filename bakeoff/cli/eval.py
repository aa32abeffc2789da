"""Evaluation commands: ``bakeoff score`` (re-score a run) and ``bakeoff report`` (Markdown/HTML report).

Heavy imports stay inside the commands (``bakeoff --help`` must stay fast).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bakeoff.cli._common import DEFAULT_RUNS, RunArg, RunsDir, console, err, find_run_or_exit

if TYPE_CHECKING:
    from bakeoff.run.documents.scores import Scores

__all__ = ["report", "rescore_run", "score"]


def _run_recipe(info, recipe_path: Path | None):
    """The recipe to score with: ``--recipe`` or the run's own recipe.yaml (paths resolved as when it ran)."""
    from bakeoff.recipe.load import RecipeError, load_recipe

    if recipe_path is not None:
        path, text = recipe_path, None
    else:
        original = info.manifest_document.recipe_path
        path = Path(original) if original else info.path / "recipe.yaml"
        text = (info.path / "recipe.yaml").read_bytes()
    try:
        return load_recipe(path, check_files=False, text=text)
    except RecipeError as exc:
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        raise typer.Exit(2) from None


def rescore_run(run_dir: Path, recipe: Any, *, judge: Any = None, skip_bad_lines: bool = False) -> Scores:
    """Score a run's answers again with ``recipe``'s evaluation settings and rewrite its scores.json.

    Questions are rebuilt from answers.jsonl (id, question, reference), so the evaluation file need not still
    exist. ``judge`` may be a ready :class:`~bakeoff.eval.judge.Judge` (default: built from ``recipe.judge``).

    Raises:
        RunStoreError: a torn or malformed answers.jsonl line (file:line), unless ``skip_bad_lines``, which
            scores the readable rows and records how many were dropped (``dropped_lines``).
    """
    from bakeoff.eval.scoring import ScoringSettings, score_answers
    from bakeoff.run.store import by_candidate, read_answers_checked

    rows, dropped = read_answers_checked(run_dir, skip_bad_lines=skip_bad_lines)
    answers, questions = by_candidate(rows)
    scores = score_answers(list(questions.values()), answers, ScoringSettings.from_recipe(recipe, judge=judge))
    scores.dropped_lines = dropped
    from bakeoff.run.retention import rescore_retention

    rescore_retention(Path(run_dir), recipe, scores)
    from bakeoff.run.documents.manifest import Manifest
    from bakeoff.run.serve import add_parity

    try:
        served = Manifest.read(Path(run_dir) / "manifest.json").served
    except (OSError, ValueError):
        served = {}
    if served:  # the served forms' parity, on the new headline
        add_parity(recipe, scores, answers, served)
    from bakeoff.eval.verdict import decide
    from bakeoff.run.store import read_run

    decide(scores, read_run(Path(run_dir)).manifest_document)
    scores.write(Path(run_dir) / "scores.json")
    return scores


def score(
    run_ref: RunArg = "latest",
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe",
            help="Score with this recipe's eval/judge settings instead of the run's own recipe.",
        ),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS,
    skip_bad_lines: Annotated[
        bool,
        typer.Option(
            "--skip-bad-lines",
            help="Score the readable rows of a torn or corrupt answers.jsonl (the table says how many were "
            "dropped) instead of stopping at the first bad line.",
        ),
    ] = False,
) -> None:
    """Re-score a finished run's answers (new metrics, a judge, other statistics) without re-answering.

    Judge verdicts come from the judge cache when the inputs and judge are unchanged.
    """
    info = find_run_or_exit(runs_dir, run_ref)
    if info.status not in ("complete", "partial"):
        err.print(
            f"error: run {info.run_id} is {info.status}; only complete (or partial) runs can be re-scored",
            style="red",
        )
        raise typer.Exit(1)
    r = _run_recipe(info, recipe)
    from bakeoff.eval.table import print_scores
    from bakeoff.run.store import RunStoreError

    try:
        with console.status("scoring …"):
            scores = rescore_run(info.path, r, skip_bad_lines=skip_bad_lines)
    except RunStoreError as exc:
        err.print(f"error: {exc}", style="red", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    print_scores(console, scores)
    if scores.dropped_lines:
        err.print(
            f"warning: {scores.dropped_lines} unreadable line(s) of answers.jsonl were left out",
            style="yellow",
        )
    console.print(f"scores written to {info.path / 'scores.json'}")


def report(
    run_ref: RunArg = "latest",
    fmt: Annotated[str, typer.Option("--format", "-f", help="md or html.")] = "html",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Report file (default: report.<format> in the run folder)."),
    ] = None,
    runs_dir: RunsDir = DEFAULT_RUNS,
) -> None:
    """Write a self-contained report: verdict, tables with intervals, charts, paired tests, judge parse-failure
    rates and error analysis (HTML embeds its charts; Markdown writes PNGs beside it)."""
    if fmt not in ("md", "html"):
        err.print(f"error: --format must be md or html, not {fmt!r}", style="red")
        raise typer.Exit(2)
    info = find_run_or_exit(runs_dir, run_ref)
    from bakeoff.eval.report import write_report

    path = output or info.path / f"report.{fmt}"
    try:
        files = write_report(info, path, fmt)  # type: ignore[arg-type]
    except ValueError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(1) from None
    console.print(f"report written to {files[0]}" + (f" (+{len(files) - 1} PNG)" if len(files) > 1 else ""))
