"""Scoring a run's answers into ``scores.json``.

Per answer and metric a value (or missing, with the reason); per candidate and metric the mean over the
answers that have a value, with ``n``, ``missing`` and a bootstrap interval ``ci``. An answer that failed
(``error``) is scored as an empty reply — a candidate that cannot answer must not look better for it — and
counted in ``errors``. On top: paired comparisons between candidates (:mod:`bakeoff.eval.stats`, whose
docstring documents those keys), judge accounting (``judge``: calls, cache hits and parse-failure rates per
metric; per candidate under ``metrics.<m>.judge``), pairwise judge verdicts (``judge_pairwise``, see
:meth:`bakeoff.eval.rubric.JudgeRubric.pairwise`) and error analysis (``error_analysis``, see
:mod:`bakeoff.eval.errors`).

Every metric is looked up in the registry (:mod:`bakeoff.eval`) and called the same way,
:meth:`~bakeoff.eval.metrics.Metric.score_samples` on the candidate's :class:`~bakeoff.eval.metrics.Sample`
batch (corpus-level ones: ``score_corpus``). Candidates that retrieve (``retrieval_k``) also get the
``automatic`` metrics — ``hit_rate@k`` and ``mrr``, their answers' ``contexts`` against the questions'
``passage``/``source``, no LLM needed — when some question has a passage or source. These names are added to
``metrics`` (other candidates show no value) and listed in ``retrieval_metrics``; they are descriptive and get
no intervals or paired tests.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from bakeoff.core import Question
from bakeoff.errors import BakeoffError
from bakeoff.eval import (
    DEFAULT_HEADLINE,
    DEFAULT_METRICS,
    MetricError,
    automatic_metrics,
    builtin_metrics,
    get_metric,
    metric_class,
    metric_origin,
)
from bakeoff.eval.metrics import Metric, MetricResult, Sample

__all__ = ["score_answers"]


def _latency_summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    return {"mean": statistics.fmean(values), "p50": pct(0.5), "p95": pct(0.95)}


def _sample(row: dict[str, Any], question: Question) -> Sample:
    """The named data every metric reads for one answer (a failed answer is an empty reply, no label)."""
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
        retrieved_contexts=[c for c in row.get("contexts") or [] if isinstance(c, dict)],
        reference_passage=question.passage,
        reference_source=question.source,
        label=None if row.get("error") else row.get("label"),
    )


_JUDGE_TOTALS = ("asked", "cache_hits", "parse_failures", "judge_errors", "calls")


def _judge_entry(results: list[MetricResult], calls: int, total: dict[str, Any]) -> dict[str, Any]:
    """A judged metric's accounting for one candidate (``metrics.<m>.judge``), added to the run's ``total``."""
    counts = {**_judge_counts(results), "calls": calls}
    for k in total:
        total[k] += counts[k]
    return counts


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


def _builtin(metric: Metric) -> bool:
    return type(metric) in builtin_metrics().values()


def _call(metric: Metric, method: str, samples: list[Sample]) -> Any:
    """``metric.<method>(samples)``; a plugin metric that fails is a :class:`MetricError` naming it."""
    try:
        return getattr(metric, method)(samples)
    except BakeoffError:
        raise
    except Exception as exc:
        if _builtin(metric):
            raise
        raise MetricError(
            f"metric {metric.name!r} ({metric_origin(metric.name)}) failed: {type(exc).__name__}: {exc}"
        ) from None


def _checked(metric: Metric, results: Any, n: int) -> list[MetricResult]:
    """``results`` if they are one MetricResult per answer with values in the declared range (else NaN or a
    value out of range would sink every mean quietly); a :class:`MetricError` naming the metric if not."""
    if not (isinstance(results, list) and len(results) == n and all(isinstance(r, MetricResult) for r in results)):
        got = f"{len(results)} items" if isinstance(results, list) else type(results).__name__
        problem = f"must return a list of one MetricResult per answer ({n}), got {got}"
    else:
        low, high = metric.score_range
        bad = [
            r.value
            for r in results
            if r.value is not None
            and not (isinstance(r.value, int | float) and low - 1e-9 <= r.value <= high + 1e-9)
        ]
        if not bad:
            return results
        problem = f"returned {bad[0]!r}, outside its score_range {low}..{high} (None is a missing value)"
    raise MetricError(f"metric {metric.name!r} ({metric_origin(metric.name)}) {problem}")


def _metric_entry(
    metric: Metric, samples: list[Sample], per_answer: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any], list[MetricResult]]:
    """One candidate's entry for one metric (per-answer values go into ``per_answer``), and the results."""
    if metric.corpus_level:
        value = _call(metric, "score_corpus", samples)
        return {"mean": value, "n": len(samples), "missing": 0, "corpus_level": True}, []
    results = _checked(metric, _call(metric, "score_samples", samples), len(samples))
    values: list[float] = []
    missing: dict[str, int] = {}
    for sample, result in zip(samples, results, strict=True):
        per_answer[sample.question_id][metric.name] = result.value
        if result.value is None:
            missing[result.reason] = missing.get(result.reason, 0) + 1
        else:
            values.append(result.value)
    return _summary(values, missing), results


def _retrieval_metrics(k: int | None, questions: Sequence[Question]) -> list[Metric]:
    """The automatic metrics of a candidate that retrieves ``k`` chunks, when a question gives a passage."""
    if not k or not any(q.passage or q.source for q in questions):
        return []
    return [get_metric(name, k=k) for name in automatic_metrics()]


def _make_judge(names: Sequence[str], judge: Any, ollama_host: str | None) -> Any:
    """The :class:`~bakeoff.eval.judge.Judge` the metrics that need one share, or None when none does."""
    from bakeoff.eval.settings import JudgeSpec

    needs_judge = [n for n in names if "judge" in metric_class(n).needs]
    if not needs_judge:
        return None
    if judge is None:
        raise ValueError(f"metrics {needs_judge} need a judge: add `judge:` to the recipe")
    if isinstance(judge, JudgeSpec):
        from bakeoff.eval.judge import Judge

        return Judge(judge, ollama_host=ollama_host)
    return judge


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
        MetricError: a metric that cannot be found or loaded, or a plugin metric that fails while scoring.
    """
    from bakeoff.eval.settings import StatisticsSpec

    names = list(metrics or DEFAULT_METRICS[task])
    if headline is None:  # the first listed metric with per-answer values (macro-F1 has none)
        listed = [n for n in names if not metric_class(n).corpus_level] if metrics else []
        headline = (
            listed[0] if listed else DEFAULT_HEADLINE[task] if DEFAULT_HEADLINE[task] in names else names[0]
        )
    if headline not in names:
        raise ValueError(f"headline metric {headline!r} is not among the metrics {names}")
    judge_obj = _make_judge(names, judge, ollama_host)
    by_id = {q.id: q for q in questions}
    resources = {"embeddings": embeddings, "judge": judge_obj, "ollama_host": ollama_host, "labels": list(labels)}
    metric_objs = {name: get_metric(name, **resources) for name in names}
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
            retrieval = _retrieval_metrics((retrieval_k or {}).get(candidate), questions)
            for metric in [*metric_objs.values(), *retrieval]:
                calls_before = judge_obj.calls if judge_obj is not None else 0
                t0 = time.perf_counter()
                entry, results = _metric_entry(metric, samples, per_answer)
                if "judge" in metric.needs:
                    total = judge_metrics.setdefault(metric.name, dict.fromkeys(_JUDGE_TOTALS, 0))
                    entry["judge"] = _judge_entry(results, judge_obj.calls - calls_before, total)
                    t_judge += time.perf_counter() - t0
                summary["metrics"][metric.name] = entry
            for metric in retrieval:
                for listing in (out["metrics"], out.setdefault("retrieval_metrics", [])):
                    if metric.name not in listing:
                        listing.append(metric.name)
            if task == "classification":
                from bakeoff.eval.classification import classification_report

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
    _add_statistics(out, metric_objs, samples_by_candidate, statistics_spec or StatisticsSpec())
    from bakeoff.eval.errors import error_analysis

    out["error_analysis"] = error_analysis(out, rows_by_candidate, by_id, fail_below=fail_below)
    return out


def _add_statistics(
    out: dict[str, Any], metric_objs: dict[str, Metric], samples: dict[str, dict[str, Sample]], spec: Any
) -> None:
    """Bootstrap intervals into ``candidates.<c>.metrics.<m>.ci`` and paired comparisons into ``statistics``."""
    from bakeoff.eval.stats import statistics_for

    retrieval = set(out.get("retrieval_metrics", []))
    names = [n for n in out["metrics"] if n not in retrieval]  # retrieval metrics: only some candidates have them

    def corpus_value(metric: Metric) -> Callable[[str, Sequence[str]], float]:
        return lambda candidate, qids: _call(metric, "score_corpus", [samples[candidate][q] for q in qids])

    intervals, comparisons = statistics_for(
        out["per_answer"],
        metrics=names,
        corpus_level={n: corpus_value(metric_objs[n]) for n in names if metric_objs[n].corpus_level},
        binary=[n for n in names if metric_objs[n].paired_test == "mcnemar"],
        resamples=spec.resamples,
        permutations=spec.permutations,
        confidence=spec.confidence,
        alpha=spec.alpha,
        seed=spec.seed,
        higher_is_better={n: metric_objs[n].higher_is_better for n in names},
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
