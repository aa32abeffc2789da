"""``bakeoff validate``, ``bakeoff schema`` and ``bakeoff metrics``: what a recipe may say, and whether it says it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

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


def _metric_line(name: str, cls: type) -> str:
    task = "rag (auto)" if cls.automatic else cls.task or "any"
    low, high = cls.score_range
    notes = [f"needs {', '.join(cls.needs)}"] if cls.needs else []
    if cls.higher_is_better is False:
        notes.append("lower is better")
    from bakeoff.eval import metric_origin

    origin = metric_origin(name)
    if origin != "built-in":
        notes.append(f"plugin: {origin}")
    extra = f"  [dim]({'; '.join(notes)})[/]" if notes else ""
    default = "default" if cls.default else ""
    return f"{name:20} {task:15} {default:8} {f'{low:g}..{high:g}':7} {escape(cls.description)}{extra}"


def metrics() -> None:
    """List the metrics a recipe can name, with task, range and needs (and those that cannot run, with why)."""
    from bakeoff.eval import MetricError, builtin_metrics, metric_class, plugin_metrics

    console.print(f"[bold]{'metric':20} {'task':15} {'':8} {'range':7} description[/]", highlight=False)
    for name, cls in builtin_metrics().items():
        if why := cls.unavailable():  # e.g. METEOR without WordNet: what to install
            console.print(f"{name:20} [red]{'unavailable':15}[/] {escape(why)}", highlight=False)
        else:
            console.print(_metric_line(name, cls), highlight=False)
    for name, found in plugin_metrics().items():
        try:
            if isinstance(found, MetricError):  # e.g. a plugin that takes a built-in's name
                raise found
            console.print(_metric_line(name, metric_class(name)), highlight=False)
        except MetricError as exc:  # a broken or clashing plugin: say why, keep listing
            console.print(f"{name:20} [red]{'broken':15}[/] {escape(str(exc))}", highlight=False)
