"""``bakeoff validate``, ``bakeoff schema`` and ``bakeoff metrics``: what a recipe may say, and whether it says it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from bakeoff.cli._common import console, load_recipe_or_exit

__all__ = ["metrics", "schema", "validate"]


def validate(recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")]) -> None:
    """Check a recipe; print every problem as FILE:LINE:COL: field: message (exit 2 if any)."""
    r = load_recipe_or_exit(recipe)
    console.print(
        f"[green]✓[/] {recipe}: recipe {r.name!r}, task {r.task}, {len(r.candidates)} candidates "
        f"({', '.join(r.names)})",
        soft_wrap=True,  # one line, however long the path: scripts grep it
        emoji=False,  # a path or name is printed as written (and rich's emoji table is not loaded: start-up)
    )


def schema(
    markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the recipe reference as Markdown.")
    ] = False,
) -> None:
    """Print the recipe JSON Schema (for editor completion: `# yaml-language-server: $schema=...`)."""
    from bakeoff.recipe.schema import dump_schema, json_schema

    if markdown:
        from bakeoff.recipe.schema_doc import render_markdown

        sys.stdout.write(render_markdown(json_schema()))
        return
    sys.stdout.write(dump_schema() + "\n")


def metrics() -> None:
    """List the metrics a recipe can name (and those that cannot run here, with the reason)."""
    from bakeoff.eval import JUDGE_METRICS, METRICS, UNAVAILABLE_METRICS, metric_class

    for name, (_cls, task) in METRICS.items():
        needs = "  [dim](needs judge:)[/]" if name in JUDGE_METRICS else ""
        console.print(
            f"{name:20} {task or 'any':15} {metric_class(name).description}{needs}", highlight=False
        )
    for name, reason in UNAVAILABLE_METRICS.items():
        console.print(f"{name:20} [red]{'unavailable':15}[/] {reason}", highlight=False)
    from bakeoff.eval.metrics import retrieval_metrics

    for metric in retrieval_metrics(1):  # reported automatically for candidates that retrieve
        name = "hit_rate@k" if metric.name.startswith("hit_rate@") else metric.name
        console.print(f"{name:20} {'rag (auto)':15} {metric.description}", highlight=False)
