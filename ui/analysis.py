"""The Compare page's "Documents and failures" tab, as data (no Streamlit): the headline per document and
question field (heatmap cells), failure-cause counts and the retention set, read from a run's scores."""

from __future__ import annotations

from typing import Any

from bakeoff.run.documents.analysis import CAUSES
from bakeoff.run.documents.scores import Scores

__all__ = ["cause_rows", "heatmap_cells", "retention_rows", "slice_fields"]


def slice_fields(scores: Scores) -> list[str]:
    """The fields the headline is broken down by (``source`` first), empty without slices."""
    return list(scores.slices.by) if scores.slices is not None else []


def heatmap_cells(scores: Scores, field: str = "source") -> list[dict[str, Any]]:
    """One cell per value of ``field`` and candidate: ``value``, ``candidate``, ``mean``, ``n``, ``questions``
    (an Altair heatmap's rows)."""
    slices = scores.slices
    if slices is None:
        return []
    counts = slices.questions.get(field, {})
    return [
        {"value": value, "candidate": cand, "mean": cell.mean, "n": cell.n, "questions": counts.get(value)}
        for value, row in slices.table(field).items()
        for cand, cell in row.items()
    ]


def cause_rows(scores: Scores) -> list[dict[str, Any]]:
    """Per candidate: failed answers out of answered, then a count per cause that occurs in the run."""
    causes = scores.failure_causes
    if causes is None:
        return []
    seen = [c for c in CAUSES if any(c in counts for counts in causes.counts.values())]
    return [
        {
            "candidate": cand,
            "failed": causes.failed.get(cand, 0),
            "answered": causes.answered.get(cand, 0),
            **{c: counts.get(c, 0) for c in seen},
        }
        for cand, counts in causes.counts.items()
    ]


def retention_rows(scores: Scores) -> list[dict[str, Any]]:
    """Per candidate on the retention set: mean, difference from the base candidate with its interval, p_holm
    and ``lost`` / ``gained`` / ``n.s.`` / ``base``."""
    retention = scores.retention
    if retention is None:
        return []
    losses = {x.candidate: x for x in retention.comparisons}
    rows = []
    for cand, cell in retention.candidates.items():
        loss = losses.get(cand)
        row: dict[str, Any] = {"candidate": cand, "mean": cell.mean, "delta": None, "ci_low": None}
        row.update({"ci_high": None, "p_holm": None, "": "base" if cand == retention.base else ""})
        if loss is not None:
            row.update(delta=loss.delta, p_holm=loss.p_holm)
            row[""] = "lost" if loss.lost else "gained" if loss.significant else "n.s."
            if loss.ci:
                row.update(ci_low=loss.ci[0], ci_high=loss.ci[1])
        rows.append(row)
    return rows
