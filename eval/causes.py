"""Why answers failed: a cause for every answer whose headline value is below ``eval.fail_below`` (above it for
a lower-is-better metric) or missing.

In order, the first that applies:

* ``error`` — the answer record carries an error (the candidate failed to answer);
* ``truncated`` — the reply was cut at ``max_new_tokens``;
* for a candidate that retrieves (its answers carry contexts, or it has a ``hit_rate@k``):
  ``retrieval miss`` when the supporting passage was not among its top-k chunks (``hit_rate@k`` = 0),
  ``context ignored`` when it was (``hit_rate@k`` = 1) and the answer is still wrong, ``wrong`` when the
  question has no passage or source to check retrieval against;
* for a closed-book candidate: ``not learned`` (the fact is not in what the model knows).

``scores.json`` layout (:class:`~bakeoff.run.documents.analysis.FailureCauses`)::

    "failure_causes": {"metric": "rougeL", "fail_below": 0.5,
                       "counts": {"rag": {"retrieval miss": 3, "context ignored": 5}, "lora": {"not learned": 9}},
                       "failed": {"rag": 8, ...}, "answered": {"rag": 20, ...}, "retrieves": {"rag": true, ...},
                       "per_answer": {"rag": {"q03": "retrieval miss", ...}, ...}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bakeoff.run.documents.analysis import CAUSES, FailureCauses
from bakeoff.run.documents.scores import Scores

__all__ = ["cause_of", "cause_sentences", "cause_table", "failure_causes"]

Row = dict[str, Any]


def _hit_metric(scores: Scores, candidate: str) -> str | None:
    """The candidate's ``hit_rate@k`` metric name (``None`` when it has none)."""
    cand = scores.candidates.get(candidate)
    names = [m for m in (cand.metrics if cand else {}) if m.startswith("hit_rate@")]
    return names[0] if names else None


def cause_of(row: Mapping[str, Any], *, retrieves: bool, hit: float | None) -> str:
    """The cause of one failed answer (see the module docstring).

    Args:
        row: the answer record (``error``, ``truncated``).
        retrieves: the candidate retrieves chunks.
        hit: its ``hit_rate@k`` on this question (1 retrieved, 0 missed, ``None`` nothing to check against).
    """
    if row.get("error"):
        return "error"
    if row.get("truncated"):
        return "truncated"
    if not retrieves:
        return "not learned"
    if hit is None:
        return "wrong"
    return "context ignored" if hit > 0 else "retrieval miss"


def failure_causes(
    scores: Scores,
    rows_by_candidate: Mapping[str, Sequence[Row]],
    *,
    fail_below: float = 0.5,
    retrieving: Sequence[str] = (),
) -> FailureCauses | None:
    """A cause for every failed answer of every candidate, and the counts per candidate.

    Args:
        scores: the scores so far (``headline``, ``per_answer``, the candidates' retrieval metrics).
        rows_by_candidate: candidate -> answer rows (``error``, ``truncated``, ``contexts``).
        fail_below: a headline value below this (above, for a lower-is-better metric) failed.
        retrieving: candidates known to retrieve (besides those whose answers carry contexts or that have a
            ``hit_rate@k``).

    Returns:
        The ``failure_causes`` section (``None`` without a headline).
    """
    from bakeoff.eval import metric_class

    metric = scores.headline
    if metric is None:
        return None
    up = getattr(metric_class(metric), "higher_is_better", True)
    counts: dict[str, dict[str, int]] = {}
    failed: dict[str, int] = {}
    answered: dict[str, int] = {}
    retrieves: dict[str, bool] = {}
    per_answer: dict[str, dict[str, str]] = {}
    for cand, rows in rows_by_candidate.items():
        hit_name = _hit_metric(scores, cand)
        retrieves[cand] = cand in retrieving or hit_name is not None or any(r.get("contexts") for r in rows)
        per_q = scores.per_answer.get(cand, {})
        causes: dict[str, str] = {}
        for row in rows:
            qid = row["question_id"]
            value = per_q.get(qid, {}).get(metric)
            if value is not None and (value >= fail_below if up else value <= fail_below):
                continue
            hit = per_q.get(qid, {}).get(hit_name) if hit_name else None
            causes[qid] = cause_of(row, retrieves=retrieves[cand], hit=hit)
        counts[cand] = {c: n for c in CAUSES if (n := sum(1 for v in causes.values() if v == c))}
        failed[cand], answered[cand], per_answer[cand] = len(causes), len(rows), causes
    # built whole, then set: a document writes only the fields it was given (mutated defaults are unset)
    return FailureCauses(
        metric=metric,
        fail_below=fail_below,
        counts=counts,
        failed=failed,
        answered=answered,
        retrieves=retrieves,
        per_answer=per_answer,
    )


def cause_table(scores: Scores | Mapping[str, Any]):
    """A rich Table: a row per candidate, the failed answers and a column per cause that occurs (``None``
    when the run has no failure causes)."""
    from rich.table import Table

    causes = Scores.of(scores).failure_causes
    if causes is None or not causes.counts:
        return None
    seen = [c for c in CAUSES if any(c in counts for counts in causes.counts.values())]
    op = "<" if _metric_direction(causes.metric) else ">"
    table = Table(
        title=f"why answers failed · {causes.metric} {op} {causes.fail_below}", title_justify="left"
    )
    table.add_column("candidate", overflow="fold")
    table.add_column("failed", justify="right")
    for cause in seen:
        table.add_column(cause, justify="right")
    for cand, counts in causes.counts.items():
        failed = f"{causes.failed.get(cand, 0)}/{causes.answered.get(cand, 0)}"
        table.add_row(cand, failed, *[str(counts.get(c, 0)) for c in seen])
    table.caption = (
        "retrieval miss: supporting passage not in the top-k; context ignored: retrieved, answer still wrong; "
        "not learned: closed-book answer wrong; truncated: cut at max_new_tokens; error: no answer"
    )
    return table


def _metric_direction(metric: str | None) -> bool:
    """Whether higher is better for ``metric`` (True for an unknown one)."""
    from bakeoff.eval import MetricError, metric_class

    try:
        return bool(getattr(metric_class(metric), "higher_is_better", True)) if metric else True
    except MetricError:
        return True


_MEANING = {
    "retrieval miss": "the supporting passage was not retrieved",
    "context ignored": "the passage was retrieved and the answer is still wrong",
    "not learned": "closed-book, the model does not know it",
    "truncated": "the reply was cut at max_new_tokens",
    "error": "the candidate failed to answer",
}


def cause_sentences(
    scores: Scores | Mapping[str, Any], *, share: float = 0.5, min_failed: int = 3
) -> list[str]:
    """One sentence per candidate whose failures mostly have one cause (at least ``share`` of at least
    ``min_failed`` failed answers), e.g. ``"rag: 7 of 9 failed answers — retrieval miss (the supporting
    passage was not retrieved)"`` — where to look first. ``wrong`` (nothing to check) is never the cause named.
    """
    causes = Scores.of(scores).failure_causes
    if causes is None:
        return []
    out = []
    for cand, counts in causes.counts.items():
        failed = causes.failed.get(cand, 0)
        top = max((c for c in counts if c != "wrong"), key=lambda c: counts[c], default=None)
        if top is None or failed < min_failed or counts[top] < share * failed:
            continue
        out.append(f"{cand}: {counts[top]} of {failed} failed answers — {top} ({_MEANING[top]})")
    return out
