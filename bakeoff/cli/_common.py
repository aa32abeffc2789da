"""What every command shares: the consoles, the common options, and loading a recipe or a run or exiting.

Only typer and rich are imported here; commands import what they need inside their functions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

__all__ = ["DEFAULT_RUNS", "RunArg", "RunsDir", "console", "err", "fail", "find_run_or_exit", "load_recipe_or_exit"]

console = Console()
err = Console(stderr=True, soft_wrap=True)  # errors are never wrapped: paths stay copyable

RunsDir = Annotated[
    Path, typer.Option("--runs-dir", help="Folder that holds runs.", envvar="BAKEOFF_RUNS_DIR")
]
DEFAULT_RUNS = Path("runs")
RunArg = Annotated[
    str,
    typer.Argument(
        metavar="RUN", help="Run id (prefix), recipe name (its latest run), 'latest' or a run folder."
    ),
]


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit to raise (``raise fail(...)``)."""
    err.print(f"error: {message}", style="red", highlight=False)
    return typer.Exit(code)


def load_recipe_or_exit(path: Path, text: str | bytes | None = None, *, check_files: bool = True):
    """Load a recipe or exit 2 with every problem on stderr."""
    from bakeoff.recipe.load import RecipeError, load_recipe

    try:
        return load_recipe(path, text=text, check_files=check_files)
    except RecipeError as exc:
        # Plain writes, never wrapped: editors and CI parse FILE:LINE:COL lines.
        for problem in exc.problems:
            sys.stderr.write(f"{problem}\n")
        n = len(exc.problems)
        sys.stderr.write(f"{n} problem{'s' if n != 1 else ''} found\n")
        raise typer.Exit(2) from None


def find_run_or_exit(runs_dir: Path, ref: str, *, readable: bool = True):
    """The run ``ref`` names (:class:`~bakeoff.run.store.RunInfo`), or exit 2 when there is none (1 when it
    cannot be read and ``readable`` is asked)."""
    from bakeoff.run.store import RunStoreError, find_run

    try:
        info = find_run(runs_dir, ref)
    except RunStoreError as exc:
        raise fail(str(exc), 2) from None
    if readable and info.problem:
        raise fail(f"run {info.path} is unreadable: {info.problem}", 1)
    return info
