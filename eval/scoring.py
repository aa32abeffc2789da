"""Scoring a run's answers into ``scores.json``.

Per answer and metric a value (or missing, with the reason); per candidate and metric the mean over the
answers that have a value, with ``n``, ``missing`` and a bootstrap interval ``ci``. An answer that failed
(``error``) is scored as an empty reply — a candidate that cannot answer must not look better for it — and
counted in ``errors``. On top: paired comparisons between candidates (:mod:`bakeoff.eval.stats`, whose
docstring documents those keys), judge accounting (``judge``: calls, cache hits and parse-failure rates per
metric; per candidate under ``metrics.<m>.judge``), pairwise judge verdicts (``judge_pairwise``, see
:meth:`bakeoff.eval.judged.JudgeRubric.pairwise`) and error analysis (``error_analysis``, see
:mod:`bakeoff.eval.errors`).

Candidates that retrieve (``retrieval_k``) are also scored on their answers' ``contexts`` against the
questions' ``passage``/``source``: ``hit_rate@k`` and ``mrr``, no LLM needed. These names are added to
``metrics`` (other candidates show no value) and listed in ``retrieval_metrics``; they are descriptive and get
no intervals or paired tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from bakeoff.core import Question
from bakeoff.eval import DEFAULT_HEADLINE, DEFAULT_METRICS, JUDGE_METRICS, get_metric, metric_class
from bakeoff.eval.metrics import MetricResult, Sample

__all__ = ["score_answers"]


def _latency_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    return {"mean": statistics.fmean(values), "p50": pct(0.5), "p95": pct(0.95)}


def _sample(row: dict[str, Any], question: Question) -> Sample:
    contexts = row.get("contexts") or None
    texts = None
    if contexts:
        texts = [c.get("text", "") if isinstance(c, dict) else str(c) for c in contexts]
    return Sample(
        question_id=question.id,
        question=question.question,
        response="" if row.get("error") else (row.get("answer") or ""),
        reference=question.reference,
        contexts=texts,
        error=bool(row.get("error")),
    )


def _judge_counts(results: list[MetricResult]) -> dict[str, Any]:
    asked = [r for r in results if r.judged]
    parse = sum(1 for r in results if r.failure == "parse")
    return {
        "asked": len(asked),
        "cache_hits": sum(1 for r in asked if r.cached),
        "parse_failures": parse,
        "judge_errors": sum(1 for r in results if r.failure == "judge"),
        "parse_failure_rate": parse / len(asked) if asked else None,
    }


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
    embeddings: Any = None,
    ollama_host: str | None = None,
    judge: Any = None,
    headline: str | None = None,
    statistics_spec: Any = None,
    fail_below: float = 0.5,
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
        embeddings: the recipe's embedding model reference (``semantic_similarity``, ``answer_relevancy``).
        ollama_host: the recipe's Ollama server, for ``ollama:`` embeddings and judges (else ``OLLAMA_HOST``).
        judge: the recipe's :class:`~bakeoff.eval.settings.JudgeSpec`, or a ready
            :class:`~bakeoff.eval.judge.Judge` (needed by judged metrics).
        headline: the metric error analysis and reports lead with (default: per task).
        statistics_spec: a :class:`~bakeoff.eval.settings.StatisticsSpec` (default settings if None).
        fail_below: a headline value below this counts as a failed answer in error analysis.
        retrieval_k: candidate name -> chunks it retrieves, for the candidates that retrieve; they get
            ``hit_rate@k`` and ``mrr`` when some question has a ``passage`` or ``source``.

    Returns:
        The ``scores.json`` document.

    Raises:
        ValueError: a judged metric without a judge, or a headline that is not among the metrics.
    """
    from bakeoff.eval.settings import JudgeSpec, StatisticsSpec

    names = list(metrics or DEFAULT_METRICS[task])
    if headline is None:  # the first listed metric with per-answer values (macro-F1 has none)
        listed = [n for n in names if not getattr(metric_class(n), "corpus_level", False)] if metrics else []
        headline = (
            listed[0] if listed else DEFAULT_HEADLINE[task] if DEFAULT_HEADLINE[task] in names else names[0]
        )
    if headline not in names:
        raise ValueError(f"headline metric {headline!r} is not among the metrics {names}")
    needs_judge = [n for n in names if n in JUDGE_METRICS]
    judge_obj = None
    if needs_judge:
        if judge is None:
            raise ValueError(f"metrics {needs_judge} need a judge: add `judge:` to the recipe")
        if isinstance(judge, JudgeSpec):
            from bakeoff.eval.judge import Judge

            judge_obj = Judge(judge, ollama_host=ollama_host)
        else:
            judge_obj = judge
    by_id = {q.id: q for q in questions}
    metric_objs = {
        name: get_metric(name, embeddings=embeddings, judge=judge_obj, ollama_host=ollama_host)
        for name in names
    }
    out: dict[str, Any] = {
        "task": task,
        "metrics": names,
        "headline": headline,
        "n_questions": len(questions),
        "candidates": {},
        "per_answer": {},
    }
    judge_metrics: dict[str, dict[str, Any]] = {}
    rows_by_candidate: dict[str, list[dict[str, Any]]] = {}
    samples_by_candidate: dict[str, dict[str, Sample]] = {}
    t_judge = 0.0
    try:
        for candidate, rows in answers.items():
            rows = [r for r in rows if r["question_id"] in by_id]
            rows_by_candidate[candidate] = rows
            per_answer: dict[str, dict[str, Any]] = {r["question_id"]: {} for r in rows}
            summary: dict[str, Any] = {
                "metrics": {},
                "errors": sum(1 for r in rows if r.get("error")),
                "n": len(rows),
            }
            references = [by_id[r["question_id"]].reference for r in rows]
            samples = [_sample(r, by_id[r["question_id"]]) for r in rows]
            samples_by_candidate[candidate] = {s.question_id: s for s in samples}
            for name, metric in metric_objs.items():
                if getattr(metric, "corpus_level", False):
                    value = metric.aggregate(
                        predictions=[r.get("label") for r in rows], references=references, labels=list(labels)
                    )
                    summary["metrics"][name] = {
                        "mean": value,
                        "n": len(rows),
                        "missing": 0,
                        "corpus_level": True,
                    }
                    continue
                calls_before = judge_obj.calls if judge_obj is not None else 0
                t0 = time.perf_counter()
                if task == "classification":
                    results = [
                        metric.score(response=None if r.get("error") else r.get("label"), reference=ref)
                        for r, ref in zip(rows, references, strict=True)
                    ]
                else:
                    results = metric.score_samples(samples)
                values = []
                missing: dict[str, int] = {}
                for row, result in zip(rows, results, strict=True):
                    per_answer[row["question_id"]][name] = result.value
                    if result.value is None:
                        missing[result.reason] = missing.get(result.reason, 0) + 1
                    else:
                        values.append(result.value)
                entry: dict[str, Any] = {
                    "mean": statistics.fmean(values) if values else None,
                    "n": len(values),
                    "missing": sum(missing.values()),
                    **({"missing_reasons": missing} if missing else {}),
                }
                if name in JUDGE_METRICS:
                    counts = _judge_counts(results)
                    counts["calls"] = judge_obj.calls - calls_before
                    entry["judge"] = counts
                    total = judge_metrics.setdefault(
                        name,
                        {"asked": 0, "cache_hits": 0, "parse_failures": 0, "judge_errors": 0, "calls": 0},
                    )
                    for k in total:
                        total[k] += counts[k]
                    t_judge += time.perf_counter() - t0
                summary["metrics"][name] = entry
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
        rubric = judge_obj.spec.rubric if judge_obj is not None else None
        if "judge_rubric" in metric_objs and rubric is not None and rubric.pairwise and len(answers) > 1:
            t0 = time.perf_counter()
            calls_before = judge_obj.calls
            out["judge_pairwise"] = metric_objs["judge_rubric"].pairwise(samples_by_candidate)
            out["judge_pairwise"]["calls"] = judge_obj.calls - calls_before
            t_judge += time.perf_counter() - t0
    finally:
        if judge_obj is not None:
            judge_obj.close()
    if judge_obj is not None:
        for counts in judge_metrics.values():
            counts["parse_failure_rate"] = (
                counts["parse_failures"] / counts["asked"] if counts["asked"] else None
            )
        out["judge"] = {**judge_obj.describe(), "seconds": round(t_judge, 2), "metrics": judge_metrics}
    _add_statistics(out, rows_by_candidate, labels, statistics_spec or StatisticsSpec())
    from bakeoff.eval.errors import error_analysis

    out["error_analysis"] = error_analysis(out, rows_by_candidate, by_id, fail_below=fail_below)
    return out


def _add_statistics(
    out: dict[str, Any], rows_by_candidate: dict[str, list[dict[str, Any]]], labels: Sequence[str], spec: Any
) -> None:
    """Bootstrap intervals into ``candidates.<c>.metrics.<m>.ci`` and paired comparisons into ``statistics``."""
    from bakeoff.eval import metric_class
    from bakeoff.eval.stats import statistics_for

    retrieval = set(out.get("retrieval_metrics", []))
    names = [
        n for n in out["metrics"] if n not in retrieval
    ]  # retrieval metrics: only some candidates have them
    corpus_level: dict[str, Callable[[str, Sequence[str]], float]] = {}
    if "macro_f1" in names:
        from bakeoff.eval.metrics import classification_report

        truth = {c: {r["question_id"]: r for r in rows} for c, rows in rows_by_candidate.items()}

        def macro_f1(candidate: str, qids: Sequence[str]) -> float:
            rows = [truth[candidate][q] for q in qids]
            return classification_report(
                predictions=[None if r.get("error") else r.get("label") for r in rows],
                references=[r.get("reference") for r in rows],
                labels=list(labels),
            )["macro_f1"]

        corpus_level["macro_f1"] = macro_f1
    intervals, comparisons = statistics_for(
        out["per_answer"],
        metrics=names,
        corpus_level=corpus_level,
        binary=[n for n in names if n == "accuracy"],
        resamples=spec.resamples,
        permutations=spec.permutations,
        confidence=spec.confidence,
        alpha=spec.alpha,
        seed=spec.seed,
        higher_is_better={n: getattr(metric_class(n), "higher_is_better", True) for n in names},
    )
    for cand, per_metric in intervals.items():
        for metric, ci in per_metric.items():
            out["candidates"][cand]["metrics"][metric]["ci"] = ci
    out["statistics"] = {
        "method": {
            "confidence": spec.confidence,
            "resamples": spec.resamples,
            "permutations": spec.permutations,
            "seed": spec.seed,
            "alpha": spec.alpha,
            "interval": "percentile bootstrap over questions",
            "pair_test": "paired sign-flip permutation test on per-question differences (exact when n <= 16)",
            "classification_test": "McNemar's exact test (accuracy); paired bootstrap (macro_f1)",
            "correction": "holm (across the pairs of each metric)",
        },
        "comparisons": comparisons,
    }
