"""Scoring a run's answers into a :class:`~bakeoff.run.documents.scores.Scores` document (``scores.json``).

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
``automatic`` metrics (:mod:`bakeoff.eval.retrieval`, no LLM needed) — ``hit_rate@k`` and ``mrr``, their
answers' ``contexts`` against the questions' ``passage``/``source``, when some question has a passage or
source, and ``answer_in_context@k`` (a short reference inside the contexts) for QA. These names are added to
``metrics`` (other candidates show no value) and listed in ``retrieval_metrics``; they are descriptive and get
no intervals or paired tests.

:func:`score_answers` composes one function per section: metric lookup, per-answer metrics and their
per-candidate summaries, retrieval scores, the classification report, latency and tokens, pairwise verdicts,
judge accounting, paired statistics and error analysis.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bakeoff.core import Question
from bakeoff.errors import BakeoffError
from bakeoff.eval import (
    DEFAULT_METRICS,
    MetricError,
    automatic_metrics,
    builtin_metrics,
    get_metric,
    metric_class,
    metric_origin,
)
from bakeoff.eval.judge_tally import JudgeTally
from bakeoff.eval.metrics import Metric, MetricResult, Sample
from bakeoff.run.documents.scores import (
    CandidateScores,
    ClassificationReport,
    Comparison,
    Latency,
    MetricSummary,
    PairwiseVerdicts,
    Scores,
    Statistics,
    StatisticsMethod,
    Tokens,
)

if TYPE_CHECKING:
    from bakeoff.eval.settings import StatisticsSpec

__all__ = ["ScoringSettings", "metric_names", "score_answers"]

Row = dict[str, Any]


@dataclass(frozen=True)
class ScoringSettings:
    """What a run is scored with (a recipe's ``task``, ``labels``, ``eval:``, ``judge:`` and resources).

    Attributes:
        task: ``qa`` or ``classification``.
        labels: the label set (classification).
        metrics: metric names; ``None``: the task's defaults.
        headline: the metric error analysis and reports lead with (default: chosen from the task and the
            references, :mod:`bakeoff.eval.headline`).
        embeddings: the embedding model reference (``semantic_similarity``, ``answer_relevancy``).
        ollama_host: the Ollama server for ``ollama:`` embeddings and judges (else ``OLLAMA_HOST``).
        judge: a :class:`~bakeoff.eval.settings.JudgeSpec`, or a ready :class:`~bakeoff.eval.judge.Judge`
            (needed by judged metrics).
        statistics: a :class:`~bakeoff.eval.settings.StatisticsSpec` (``None``: default settings).
        fail_below: a headline value below this counts as a failed answer in error analysis.
        slice_by: question fields to break the headline down by, besides the source document.
    """

    task: str = "qa"
    labels: Sequence[str] = ()
    metrics: Sequence[str] | None = None
    headline: str | None = None
    embeddings: Any = None
    ollama_host: str | None = None
    judge: Any = None
    statistics: StatisticsSpec | None = None
    fail_below: float = 0.5
    slice_by: Sequence[str] = ()

    @classmethod
    def from_recipe(cls, recipe: Any, *, judge: Any = None) -> ScoringSettings:
        """The settings of a :class:`~bakeoff.recipe.schema.Recipe` (``judge`` replaces its judge)."""
        return cls(
            task=recipe.task,
            labels=tuple(recipe.labels or ()),
            metrics=recipe.eval.metrics,
            headline=recipe.eval.headline,
            embeddings=recipe.embeddings,
            ollama_host=recipe.ollama_host,
            judge=judge if judge is not None else recipe.judge,
            statistics=recipe.eval.statistics,
            fail_below=recipe.eval.fail_below,
            slice_by=tuple(recipe.eval.slice_by),
        )


def score_answers(
    questions: Sequence[Question],
    answers: dict[str, list[Row]],
    settings: ScoringSettings,
    *,
    retrieval_k: dict[str, int] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Scores:
    """Score every candidate's answers.

    Args:
        questions: the evaluation set (references come from here).
        answers: candidate name -> answer rows (as in ``answers.jsonl``).
        settings: what to score with.
        retrieval_k: candidate name -> chunks it retrieves, for the candidates that retrieve; they get
            ``answer_in_context@k`` (QA), and ``hit_rate@k`` and ``mrr`` when some question has a
            ``passage`` or ``source``.
        progress: called with the number of answers scored so far for one candidate.

    Returns:
        The ``scores.json`` document.

    Raises:
        ValueError: a judged metric without a judge, or a headline that is not among the metrics.
        MetricError: a metric that cannot be found or loaded, or a plugin metric that fails while scoring.
    """
    names, headline, headline_reason = metric_names(settings, questions)
    by_id = {q.id: q for q in questions}
    rows_by_candidate = {c: [r for r in rows if r["question_id"] in by_id] for c, rows in answers.items()}
    scores = Scores(
        task=settings.task,
        metrics=names,
        headline=headline,
        headline_reason=headline_reason,
        n_questions=len(questions),
        candidates={},
        per_answer={},
    )
    retrieves = any(q.passage or q.source for q in questions)
    tally = JudgeTally(_open_judge(names, settings))
    samples: dict[str, dict[str, Sample]] = {}
    try:
        metrics = _metric_objects(names, settings, tally.judge)
        for candidate, rows in rows_by_candidate.items():
            samples[candidate] = _score_candidate(scores, candidate, rows, by_id, metrics, settings, tally)
            k = (retrieval_k or {}).get(candidate)
            if k:
                _add_retrieval(scores, candidate, k, samples[candidate], passages=retrieves)
            if progress:
                progress(len(rows))
        pairwise = _pairwise(metrics, samples, tally)
        if pairwise is not None:
            scores.judge_pairwise = pairwise
    finally:
        if tally.judge is not None:
            tally.judge.close()
    if tally.judge is not None:
        scores.judge = tally.accounting()
    _add_statistics(scores, metrics, samples, settings)
    from bakeoff.eval.errors import error_analysis

    scores.error_analysis = error_analysis(scores, rows_by_candidate, by_id, fail_below=settings.fail_below)
    from bakeoff.eval.analysis import add_breakdowns

    add_breakdowns(scores, questions, rows_by_candidate, settings, retrieving=list(retrieval_k or {}))
    return scores


# -- metric lookup ------------------------------------------------------------------------------------------


def metric_names(settings: ScoringSettings, questions: Sequence[Question]) -> tuple[list[str], str, str]:
    """The metrics to score (default: per task), the headline and why it leads (see
    :mod:`bakeoff.eval.headline`)."""
    from bakeoff.eval.headline import choose_headline

    names = list(settings.metrics or DEFAULT_METRICS[settings.task])
    headline, why = choose_headline(
        settings.task,
        names,
        listed=bool(settings.metrics),
        references=[q.reference for q in questions],
        headline=settings.headline,
    )
    return names, headline, why


def _open_judge(names: Sequence[str], settings: ScoringSettings) -> Any:
    """The :class:`~bakeoff.eval.judge.Judge` the judged metrics need (``None`` when none is named)."""
    needs_judge = [n for n in names if "judge" in metric_class(n).needs]
    if not needs_judge:
        return None
    if settings.judge is None:
        raise ValueError(f"metrics {needs_judge} need a judge: add `judge:` to the recipe")
    from bakeoff.eval.settings import JudgeSpec

    if isinstance(settings.judge, JudgeSpec):
        from bakeoff.eval.judge import Judge

        return Judge(settings.judge, ollama_host=settings.ollama_host)
    return settings.judge


def _metric_objects(names: Sequence[str], settings: ScoringSettings, judge: Any) -> dict[str, Metric]:
    """Metric name -> an instance, given the resources it asks for by name."""
    resources = {
        "embeddings": settings.embeddings,
        "judge": judge,
        "ollama_host": settings.ollama_host,
        "labels": list(settings.labels),
    }
    return {name: get_metric(name, **resources) for name in names}


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


# -- one candidate ------------------------------------------------------------------------------------------


def _sample(row: Row, question: Question) -> Sample:
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
        retrieved_contexts=[c for c in contexts or [] if isinstance(c, dict)],
        reference_passage=question.passage,
        reference_source=question.source,
        label=_label(row),
    )


def _label(row: Row) -> str | None:
    """The label a classification answer predicted (``None`` for a failed or unparsed answer)."""
    return None if row.get("error") else row.get("label")


def _score_candidate(
    scores: Scores,
    candidate: str,
    rows: list[Row],
    by_id: dict[str, Question],
    metrics: dict[str, Metric],
    settings: ScoringSettings,
    tally: JudgeTally,
) -> dict[str, Sample]:
    """Score one candidate into ``scores`` (its summary and per-answer values); returns its samples."""
    per_answer: dict[str, dict[str, Any]] = {r["question_id"]: {} for r in rows}
    summary = CandidateScores(metrics={}, errors=sum(1 for r in rows if r.get("error")), n=len(rows))
    references = [by_id[r["question_id"]].reference for r in rows]
    samples = [_sample(r, by_id[r["question_id"]]) for r in rows]
    for name, metric in metrics.items():
        calls_before = tally.calls()
        t0 = time.perf_counter()
        summary.metrics[name], results = _metric_entry(metric, samples, per_answer)
        if "judge" in metric.needs:
            summary.metrics[name].judge = tally.count(name, results, calls_before, t0)
    if settings.task == "classification":
        summary.classification = _classification(rows, references, settings.labels)
    _add_cost(summary, rows)
    if rows and summary.errors == len(rows):  # nothing came back: a failed candidate, not a score of 0
        summary.failed = str(rows[0]["error"])
    scores.candidates[candidate] = summary
    scores.per_answer[candidate] = per_answer
    return {s.question_id: s for s in samples}


def _metric_entry(
    metric: Metric, samples: list[Sample], per_answer: dict[str, dict[str, Any]]
) -> tuple[MetricSummary, list[MetricResult]]:
    """One candidate's summary for one metric (each answer's value goes into ``per_answer``), and the results
    (none for a corpus-level metric, which has one value per candidate)."""
    if metric.corpus_level:
        value = _call(metric, "score_corpus", samples)
        return MetricSummary(mean=value, n=len(samples), missing=0, corpus_level=True), []
    results = _checked(metric, _call(metric, "score_samples", samples), len(samples))
    values: list[float] = []
    missing: dict[str, int] = {}
    for sample, result in zip(samples, results, strict=True):
        per_answer.setdefault(sample.question_id, {})[metric.name] = result.value
        if result.value is None:
            missing[result.reason] = missing.get(result.reason, 0) + 1
        else:
            values.append(result.value)
    summary = MetricSummary(
        mean=statistics.fmean(values) if values else None, n=len(values), missing=sum(missing.values())
    )
    if missing:
        summary.missing_reasons = missing
    return summary, results


def _add_retrieval(
    scores: Scores, candidate: str, k: int, samples: dict[str, Sample], *, passages: bool
) -> None:
    """The automatic metrics of one retrieving candidate's answers (a failed answer retrieved nothing):
    hit_rate@k and mrr when some question has a passage or source (``passages``), answer_in_context@k for
    QA; their names join ``metrics`` and ``retrieval_metrics``."""
    per_answer = scores.per_answer[candidate]
    for name in automatic_metrics():
        cls = metric_class(name)
        if ("reference_passage" in cls.needs and not passages) or cls.task not in (None, scores.task):
            continue
        metric = get_metric(name, k=k)
        entry, _ = _metric_entry(metric, list(samples.values()), per_answer)
        scores.candidates[candidate].metrics[metric.name] = entry
        if metric.name not in scores.metrics:
            scores.metrics.append(metric.name)
        if metric.name not in scores.retrieval_metrics:
            scores.retrieval_metrics = [*scores.retrieval_metrics, metric.name]


def _classification(rows: list[Row], references: list[str], labels: Sequence[str]) -> ClassificationReport:
    from bakeoff.eval.classification import classification_report

    report = classification_report(
        predictions=[_label(r) for r in rows], references=references, labels=list(labels)
    )
    return ClassificationReport.model_validate(report)


def _latency(values: list[float]) -> Latency:
    if not values:
        return Latency()
    ordered = sorted(values)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(p * (len(ordered) - 1))))]

    return Latency(mean=statistics.fmean(values), p50=pct(0.5), p95=pct(0.95))


def _add_cost(summary: CandidateScores, rows: list[Row]) -> None:
    """Latency per answer, token totals and truncation counts."""
    summary.latency_s = _latency([float(r.get("latency_s") or 0.0) for r in rows])
    summary.tokens = Tokens(
        prompt=sum(int(r.get("prompt_tokens") or 0) for r in rows),
        completion=sum(int(r.get("completion_tokens") or 0) for r in rows),
    )
    summary.truncated = sum(1 for r in rows if r.get("truncated"))
    summary.prompt_truncated = sum(1 for r in rows if r.get("prompt_truncated"))


def _pairwise(
    metrics: dict[str, Metric], samples: dict[str, dict[str, Sample]], tally: JudgeTally
) -> PairwiseVerdicts | None:
    """``judge_rubric`` verdicts on every pair of candidates, when the rubric asks for them."""
    rubric = tally.judge.spec.rubric if tally.judge is not None else None
    if "judge_rubric" not in metrics or rubric is None or not rubric.pairwise or len(samples) < 2:
        return None
    t0 = time.perf_counter()
    calls_before = tally.judge.calls
    verdicts = metrics["judge_rubric"].pairwise(samples)
    tally.seconds += time.perf_counter() - t0
    return PairwiseVerdicts.model_validate({**verdicts, "calls": tally.judge.calls - calls_before})


# -- paired statistics --------------------------------------------------------------------------------------


def _add_statistics(
    scores: Scores, metrics: dict[str, Metric], samples: dict[str, dict[str, Sample]], settings: ScoringSettings
) -> None:
    """Bootstrap intervals into ``candidates.<c>.metrics.<m>.ci`` and paired comparisons into ``statistics``
    (retrieval metrics are left out: only some candidates have them)."""
    from bakeoff.eval.settings import StatisticsSpec
    from bakeoff.eval.stats import statistics_for

    spec = settings.statistics or StatisticsSpec()
    names = [n for n in scores.metrics if n not in set(scores.retrieval_metrics)]

    def corpus_value(metric: Metric) -> Callable[[str, Sequence[str]], float]:
        """The metric of a candidate on a subset (with repeats) of questions, for the bootstrap."""
        return lambda candidate, qids: _call(metric, "score_corpus", [samples[candidate][q] for q in qids])

    answered = {c: v for c, v in scores.per_answer.items() if not scores.candidates[c].failed}
    intervals, comparisons = statistics_for(
        answered,  # a failed candidate (every answer an error) has no interval and is compared with nothing
        metrics=names,
        corpus_level={n: corpus_value(metrics[n]) for n in names if metrics[n].corpus_level},
        binary=[n for n in names if metrics[n].paired_test == "mcnemar"],
        resamples=spec.resamples,
        permutations=spec.permutations,
        confidence=spec.confidence,
        alpha=spec.alpha,
        seed=spec.seed,
        higher_is_better={n: metrics[n].higher_is_better for n in names},
    )
    for cand, per_metric in intervals.items():
        for metric, ci in per_metric.items():
            scores.candidates[cand].metrics[metric].ci = ci
    scores.statistics = Statistics(
        method=StatisticsMethod(
            confidence=spec.confidence,
            resamples=spec.resamples,
            permutations=spec.permutations,
            seed=spec.seed,
            alpha=spec.alpha,
            interval="BCa bootstrap over questions (scipy.stats.bootstrap)",
            pair_test="paired sign-flip permutation test on per-question differences "
            "(scipy.stats.permutation_test; exact when 2^n <= permutations)",
            classification_test="McNemar's exact test (accuracy); paired bootstrap (macro_f1)",
            correction="holm (across the pairs of each metric)",
        ),
        comparisons={
            m: [Comparison.model_validate(e) for e in entries] for m, entries in comparisons.items()
        },
    )
