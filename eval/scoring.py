"""Scoring a run's answers into ``scores.json``.

Per answer and metric a value (or missing, with the reason); per candidate and metric the mean over the
answers that have a value, with ``n`` and ``missing``. An answer that failed (``error``) is scored as an
empty reply — a candidate that cannot answer must not look better for it — and counted in ``errors``.

Candidates that retrieve (``retrieval_k``) are also scored on their answers' ``contexts`` against the
questions' ``passage``/``source``: ``hit_rate@k`` and ``mrr``, no LLM needed. These names are added to
``metrics`` (other candidates show no value) and listed in ``retrieval_metrics``.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from typing import Any

from bakeoff.eval import DEFAULT_METRICS, get_metric
from bakeoff.plugins import Question

__all__ = ["score_answers"]


def _latency_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    return {"mean": statistics.fmean(values), "p50": pct(0.5), "p95": pct(0.95)}


def _summary(values: list[float], missing: dict[str, int]) -> dict[str, Any]:
    return {
        "mean": statistics.fmean(values) if values else None,
        "n": len(values),
        "missing": sum(missing.values()),
        **({"missing_reasons": missing} if missing else {}),
    }


def _score_retrieval(
    k: int, rows: list[dict[str, Any]], by_id: dict[str, Question], per_answer: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """hit_rate@k and mrr of one retrieving candidate's answers (a failed answer retrieved nothing)."""
    from bakeoff.eval.metrics import retrieval_metrics

    out = {}
    for metric in retrieval_metrics(k):
        values: list[float] = []
        missing: dict[str, int] = {}
        for row in rows:
            q = by_id[row["question_id"]]
            result = metric.score(
                retrieved_contexts=row.get("contexts") or [],
                reference_passage=q.passage,
                reference_source=q.source,
            )
            per_answer.setdefault(row["question_id"], {})[metric.name] = result.value
            if result.value is None:
                missing[result.reason] = missing.get(result.reason, 0) + 1
            else:
                values.append(result.value)
        out[metric.name] = _summary(values, missing)
    return out


def score_answers(
    *,
    task: str,
    labels: Sequence[str],
    questions: Sequence[Question],
    answers: dict[str, list[dict[str, Any]]],
    metrics: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
    retrieval_k: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Score every candidate's answers.

    Args:
        task: ``qa`` or ``classification``.
        labels: the label set (classification).
        questions: the evaluation set (references come from here).
        answers: candidate name -> answer rows (as in ``answers.jsonl``).
        metrics: metric names; default per task.
        progress: called with the number of answers scored so far for one candidate.
        retrieval_k: candidate name -> chunks it retrieves, for the candidates that retrieve; they get
            ``hit_rate@k`` and ``mrr`` when some question has a ``passage`` or ``source``.

    Returns:
        The ``scores.json`` document.
    """
    names = list(metrics or DEFAULT_METRICS[task])
    by_id = {q.id: q for q in questions}
    metric_objs = {name: get_metric(name) for name in names}
    out: dict[str, Any] = {
        "task": task,
        "metrics": names,
        "n_questions": len(questions),
        "candidates": {},
        "per_answer": {},
    }
    for candidate, rows in answers.items():
        rows = [r for r in rows if r["question_id"] in by_id]
        per_answer: dict[str, dict[str, Any]] = {}
        summary: dict[str, Any] = {
            "metrics": {},
            "errors": sum(1 for r in rows if r.get("error")),
            "n": len(rows),
        }
        references = [by_id[r["question_id"]].reference for r in rows]
        for name, metric in metric_objs.items():
            if getattr(metric, "corpus_level", False):
                value = metric.aggregate(
                    predictions=[r.get("label") for r in rows], references=references, labels=list(labels)
                )
                summary["metrics"][name] = {"mean": value, "n": len(rows), "missing": 0, "corpus_level": True}
                continue
            values = []
            missing: dict[str, int] = {}
            for row, ref in zip(rows, references, strict=True):
                if task == "classification":
                    result = metric.score(
                        response=row.get("label") if not row.get("error") else None, reference=ref
                    )
                else:
                    result = metric.score(
                        response="" if row.get("error") else (row.get("answer") or ""), reference=ref
                    )
                per_answer.setdefault(row["question_id"], {})[name] = result.value
                if result.value is None:
                    missing[result.reason] = missing.get(result.reason, 0) + 1
                else:
                    values.append(result.value)
            summary["metrics"][name] = _summary(values, missing)
        k = (retrieval_k or {}).get(candidate)
        if k and any(q.passage or q.source for q in questions):
            found = _score_retrieval(k, rows, by_id, per_answer)
            summary["metrics"].update(found)
            for name in found:
                for listing in (out["metrics"], out.setdefault("retrieval_metrics", [])):
                    if name not in listing:
                        listing.append(name)
        if task == "classification":
            from bakeoff.eval.metrics import classification_report

            summary["classification"] = classification_report(
                predictions=[None if r.get("error") else r.get("label") for r in rows],
                references=references,
                labels=list(labels),
            )
        summary["latency_s"] = _latency_summary([float(r.get("latency_s") or 0.0) for r in rows])
        summary["tokens"] = {
            "prompt": sum(int(r.get("prompt_tokens") or 0) for r in rows),
            "completion": sum(int(r.get("completion_tokens") or 0) for r in rows),
        }
        summary["truncated"] = sum(1 for r in rows if r.get("truncated"))
        summary["prompt_truncated"] = sum(1 for r in rows if r.get("prompt_truncated"))
        out["candidates"][candidate] = summary
        out["per_answer"][candidate] = per_answer
        if progress:
            progress(len(rows))
    return out
