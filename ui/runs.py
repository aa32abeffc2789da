"""The Runs page's logic, without Streamlit: every run as a table row, named and summarised by its headline.

Takes :class:`~bakeoff.run.store.RunInfo` objects and reads their typed documents
(:mod:`bakeoff.run.documents`); returns plain dicts a page hands to ``st.dataframe``. A field an older or newer
run does not have is shown as missing, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bakeoff.run.documents.base import finite
from bakeoff.run.documents.scores import Scores
from bakeoff.run.store import RunInfo

__all__ = ["HEADLINE_METRICS", "headline", "recipes_of", "run_key", "run_row", "runs_table"]

# The metric a run is summarised by when its scores name no headline: the first of these that it scored.
HEADLINE_METRICS = (
    "macro_f1",
    "accuracy",
    "answer_correctness",
    "semantic_similarity",
    "token_f1",
    "rougeL",
)


def run_key(info: RunInfo) -> str:
    """``recipe/run-id``: how a run is named in the console (and in ``?run=`` links)."""
    return f"{info.recipe}/{info.run_id}"


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def headline(scores: Scores | Mapping[str, Any] | None) -> tuple[str, str, float] | None:
    """``(metric, best candidate, its mean)`` for the run's headline metric, or None without scores (or when
    every candidate failed)."""
    if not scores:
        return None
    scores = Scores.of(scores)
    chosen = scores.headline if scores.headline in scores.metrics else None  # the run's own choice
    fallback = scores.metrics[0] if scores.metrics else None
    chosen = chosen or next((m for m in HEADLINE_METRICS if m in scores.metrics), fallback)
    if chosen is None:
        return None
    best: tuple[str, float] | None = None
    for name, mean in scores.means(chosen).items():  # a failed candidate (every answer an error) has none
        value = finite(mean)
        if value is not None and (best is None or value > best[1]):
            best = (name, value)
    return (chosen, best[0], best[1]) if best else None


def run_row(info: RunInfo) -> dict[str, Any]:
    """One Runs-page row: recipe, run, status, start time, duration, candidates, headline metric."""
    manifest = info.manifest_document
    started, ended = _parse_time(manifest.started_at), _parse_time(manifest.ended_at)
    head = headline(info.scores_document)
    return {
        "run": run_key(info),
        "recipe": info.recipe,
        "run_id": info.run_id,
        "status": "unreadable" if info.problem else info.status,
        "started": started.astimezone().strftime("%Y-%m-%d %H:%M") if started else "",
        "duration_s": round((ended - started).total_seconds(), 1) if started and ended else None,
        "candidates": ", ".join(info.candidates),
        "n_candidates": len(info.candidates),
        "questions": manifest.n_questions,
        "metric": head[0] if head else "",
        "best": head[1] if head else "",
        "best_value": head[2] if head else None,
        "problem": info.problem or manifest.error or "",
        "path": str(info.path),
    }


def runs_table(runs: list[RunInfo], recipes: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows for the Runs page, optionally only for some recipes (newest first, as given)."""
    return [run_row(r) for r in runs if not recipes or r.recipe in recipes]


def recipes_of(runs: list[RunInfo]) -> list[str]:
    """The recipe names that have runs, sorted."""
    return sorted({r.recipe for r in runs})
