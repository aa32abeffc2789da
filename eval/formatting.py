"""How numbers are written wherever scores are shown: the terminal tables, the report and the console.

Light on purpose (no imports): every reader of a scores document uses it.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["interval", "mean_cell", "number", "percent"]

MISSING = "—"


def number(value: float | None, digits: int = 3) -> str:
    """``0.412`` (``—`` when missing)."""
    return MISSING if value is None else f"{value:.{digits}f}"


def interval(ci: Sequence[float | None] | None, digits: int = 2) -> str:
    """``[0.35, 0.47]`` (empty when there is no complete interval)."""
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return ""
    return f"[{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]"


def mean_cell(mean: float | None, ci: Sequence[float | None] | None = None, *, best: bool = False) -> str:
    """``0.412 [0.35, 0.47] ★``: a mean, its interval (when there is one) and the best mark."""
    text = " ".join(p for p in (number(mean), interval(ci)) if p)
    return text + (" ★" if best and mean is not None else "")


def percent(rate: float | None) -> str:
    """``12%`` (``—`` when missing)."""
    return MISSING if rate is None else f"{rate:.0%}"
