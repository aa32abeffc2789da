"""The one progress bar bakeoff draws for long work: description, bar, done/total, elapsed, ETA.

Leaf module: imports nothing from bakeoff (rich is imported when a bar is made).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

__all__ = ["progress_bar"]


def progress_bar(console: Console, *extra_columns: str, transient: bool = False) -> Progress:
    """A rich :class:`~rich.progress.Progress` with bakeoff's columns.

    Args:
        console: where to draw.
        *extra_columns: more text columns after the ETA, e.g. ``"{task.fields[losses]}"``.
        transient: remove the bar when it finishes.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        *(TextColumn(c) for c in extra_columns),
        console=console,
        transient=transient,
    )
