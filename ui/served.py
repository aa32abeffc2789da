"""The Compare page's "served model" groups: each fine-tuned candidate with its served forms (no Streamlit)."""

from __future__ import annotations

from typing import Any

from bakeoff.eval.served import served_rows, served_warnings
from bakeoff.run.documents.scores import Scores

__all__ = ["served_groups"]


def served_groups(scores: Scores | dict[str, Any] | None) -> list[dict[str, Any]]:
    """One group per candidate that has served forms: ``{"candidate", "mean", "rows", "warnings"}`` — its own
    headline mean, a row per form (engine, agreement, Δ with interval, finding), and the warnings that name it."""
    scores = Scores.of(scores)
    warnings = served_warnings(scores)
    groups: dict[str, dict[str, Any]] = {}
    for row in served_rows(scores):
        cand = row["vs"]
        group = groups.setdefault(
            cand,
            {
                "candidate": cand,
                "mean": scores.entry(cand, scores.headline).mean,
                "rows": [],
                "warnings": [],
            },
        )
        group["rows"].append(
            {
                **{k: v for k, v in row.items() if k != "vs"},
                "mean": scores.entry(row["served form"], scores.headline).mean,
            }
        )
        group["warnings"] += [w for w in warnings if w.startswith(row["served form"] + ":")]
    return list(groups.values())
