"""``scores.json`` as a pydantic model: :class:`Scores`, which scoring builds and the terminal table, the
report and the console read (its query methods replace digging in raw dicts).

Layout (every part documented where it is declared)::

    task, metrics, headline, headline_reason, n_questions
    candidates.<c>                  CandidateScores: metrics.<m> (MetricSummary), errors, n, classification,
                                    latency_s, tokens, truncated, prompt_truncated
    per_answer.<c>.<question>.<m>   value or null
    retrieval_metrics               names in metrics that score retrieval
    judge_pairwise, judge           PairwiseVerdicts, JudgeAccounting
    statistics                      method, comparisons.<m>[] (Comparison)
    error_analysis                  ErrorAnalysis: lost.<c>, all_fail[]
    slices, failure_causes, retention   see :mod:`bakeoff.run.documents.analysis`
    verdict, interaction            Verdict, Interaction (bakeoff.run.documents.decision);
                                    candidates.<c>.cost is a CandidateCost
    served.<c@form>                 ServedParity: agreement and paired difference with the trained model
"""

from __future__ import annotations

from pydantic import Field

from bakeoff.run.documents.analysis import FailureCauses, Retention, Slices
from bakeoff.run.documents.base import Document, Number, RunDocument, interval_of
from bakeoff.run.documents.decision import CandidateCost, Interaction, Verdict
from bakeoff.run.documents.served import ServedParity

__all__ = [
    "CandidateScores",
    "ClassificationReport",
    "Comparison",
    "ErrorAnalysis",
    "FailedQuestion",
    "JudgeAccounting",
    "JudgeCounts",
    "JudgeTotals",
    "LabelScores",
    "Latency",
    "LostQuestion",
    "LostQuestions",
    "MetricSummary",
    "PairSummary",
    "PairwiseQuestion",
    "PairwiseVerdicts",
    "Scores",
    "Statistics",
    "StatisticsMethod",
    "Tokens",
]


class JudgeCounts(Document):
    """What the judge did for one candidate and judged metric (``candidates.<c>.metrics.<m>.judge``)."""

    asked: int = 0
    """Answers that needed a verdict (the rest had no value to judge, e.g. no retrieved contexts)."""
    cache_hits: int = 0
    """Verdicts taken from the judge cache."""
    parse_failures: int = 0
    """Verdicts that could not be parsed; their values are missing, never 0."""
    judge_errors: int = 0
    """Verdicts lost to an unreachable or failing judge."""
    parse_failure_rate: Number | None = None
    """``parse_failures / asked`` (``None`` when nothing was asked)."""
    calls: int | None = None
    """Judge requests this metric made for this candidate."""


class MetricSummary(Document):
    """One candidate's result on one metric (``candidates.<c>.metrics.<m>``)."""

    mean: Number | None = None
    """Mean over the answers that have a value (corpus-level metrics: the value on all answers)."""
    n: int = 0
    """Answers with a value."""
    missing: int = 0
    """Answers without a value; never counted as 0."""
    missing_reasons: dict[str, int] = Field(default_factory=dict)
    """Why values are missing: reason -> answers (only when some are)."""
    corpus_level: bool = False
    """The metric is computed on all answers at once (macro-F1), not averaged per answer."""
    judge: JudgeCounts | None = None
    """Judge accounting (judged metrics only)."""
    ci: list[Number] | None = None
    """Bootstrap interval ``[low, high]`` of the mean (``None`` without values; absent for retrieval
    metrics, which are descriptive)."""

    def interval(self) -> tuple[float | None, float | None]:
        """``(low, high)`` around the mean: ``ci``, or the spellings other producers use (``ci_low``/
        ``ci_high``, ``ci95``, ``interval``, ...); ``(None, None)`` when there is no finite one."""
        return interval_of({**(self.model_extra or {}), "ci": self.ci})


class LabelScores(Document):
    """Precision, recall and F1 of one label."""

    precision: Number = 0.0
    recall: Number = 0.0
    f1: Number = 0.0
    support: int = 0
    """Answers whose reference is this label."""


class ClassificationReport(Document):
    """A classification candidate's full report (``candidates.<c>.classification``)."""

    accuracy: Number | None = None
    macro_f1: Number | None = None
    per_label: dict[str, LabelScores] = Field(default_factory=dict)
    confusion: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Reference label -> predicted label -> answers; an unparsed prediction is ``"(none)"``."""
    unparsed: int = 0
    """Answers whose label could not be parsed (counted wrong)."""
    n: int = 0


class Latency(Document):
    """Seconds per answer as the candidate saw them (answers of one batch share its time)."""

    mean: Number | None = None
    p50: Number | None = None
    p95: Number | None = None


class Tokens(Document):
    """Token totals over a candidate's answers."""

    prompt: int = 0
    completion: int = 0


class CandidateScores(Document):
    """Everything scored about one candidate (``candidates.<c>``)."""

    metrics: dict[str, MetricSummary] = Field(default_factory=dict)
    """Metric name -> its summary (retrieval metrics only for candidates that retrieve)."""
    errors: int = 0
    """Answers that failed (scored as empty replies)."""
    n: int | None = None
    """Answers scored."""
    classification: ClassificationReport | None = None
    """Per-label report (classification runs)."""
    latency_s: Latency = Field(default_factory=Latency)
    tokens: Tokens = Field(default_factory=Tokens)
    truncated: int = 0
    """Answers cut at ``max_new_tokens``."""
    prompt_truncated: int = 0
    """Answers whose prompt was cut to fit the context window."""
    failed: str | None = None
    """Set when every answer of the candidate is an error: the first error (a failed candidate, not a
    result: its means are never compared, marked best or ranked; ``None`` when any answer came back)."""
    cost: CandidateCost | None = None
    """Training, latency, tokens and GPU memory (:mod:`bakeoff.run.documents.decision`)."""


# --- scores.json: across candidates ------------------------------------------------------------------------


class StatisticsMethod(Document):
    """How the intervals and paired tests were computed (``statistics.method``)."""

    confidence: Number = 0.95
    resamples: int | None = None
    permutations: int | None = None
    seed: int | None = None
    alpha: Number = 0.05
    """A pair is significant when its Holm-corrected p is below this."""
    interval: str | None = None
    pair_test: str | None = None
    classification_test: str | None = None
    correction: str | None = None
    power: Number | None = None
    """The power ``mdd`` and ``n_needed`` are computed for (0.8)."""


class Comparison(Document):
    """One pair of candidates on one metric (see :mod:`bakeoff.eval.stats`)."""

    a: str = ""
    b: str = ""
    n: int | None = None
    """Questions both have a value for."""
    mean_a: Number | None = None
    mean_b: Number | None = None
    delta: Number = 0.0
    """``mean(a - b)`` on the shared questions."""
    ci: list[Number] | None = None
    """Paired bootstrap interval of ``delta``."""
    p: Number = 1.0
    test: str = "permutation"
    """``permutation``, ``mcnemar`` (accuracy) or ``bootstrap`` (corpus-level metrics)."""
    wins: int | None = None
    losses: int | None = None
    ties: int | None = None
    a_only: int | None = None
    """McNemar: questions only a got right."""
    b_only: int | None = None
    p_holm: Number = 1.0
    """``p`` corrected with Holm's method across the pairs of this metric."""
    significant: bool = False
    better: str | None = None
    """The significantly better candidate, or ``None``."""
    sd_diff: Number | None = None
    """Standard deviation of the per-question differences (:mod:`bakeoff.eval.power`)."""
    mdd: Number | None = None
    """Minimum detectable difference: the smallest ``|delta|`` this many paired questions detect with
    ``statistics.method.power`` at ``alpha``."""
    n_needed: int | None = None
    """Not significant: paired questions needed to detect the observed ``delta`` (``None``: delta is 0)."""


class Statistics(Document):
    """Paired comparisons between candidates (``statistics``)."""

    method: StatisticsMethod = Field(default_factory=StatisticsMethod)
    comparisons: dict[str, list[Comparison]] = Field(default_factory=dict)
    """Metric -> one entry per pair, in recipe order (a before b)."""


class JudgeTotals(Document):
    """What the judge did for one metric over all candidates (``judge.metrics.<m>``)."""

    asked: int = 0
    cache_hits: int = 0
    parse_failures: int = 0
    judge_errors: int = 0
    calls: int | None = None
    parse_failure_rate: Number | None = None


class JudgeAccounting(Document):
    """The judge of a run and what it cost (``judge``); the first four keys are the judge's identity."""

    model: str | None = None
    max_new_tokens: int | None = None
    temperature: Number | None = None
    structured_output: str | None = None
    calls: int = 0
    """Judge requests, over every metric and the pairwise verdicts."""
    cache_hits: int = 0
    endpoint: str | None = None
    server_requests: int | None = None
    """Requests the bakeoff-served local judge answered (when bakeoff served it)."""
    server_busy_s: Number | None = None
    seconds: Number = 0.0
    """Wall time spent in judged scoring."""
    metrics: dict[str, JudgeTotals] = Field(default_factory=dict)
    caution: str | None = None
    """What the reader should know about this judge's verdicts (the embedded 135M judge is a weak grader)."""


class PairSummary(Document):
    """Pairwise verdicts of one pair (``judge_pairwise.summary["a vs b"]``)."""

    a_wins: int = 0
    b_wins: int = 0
    ties: int = 0
    order_disagreements: int = 0
    """Questions where the two orders gave different verdicts (counted as ties)."""
    missing: int = 0


class PairwiseQuestion(Document):
    """One pair's verdict on one question."""

    question_id: str = ""
    a: str = ""
    b: str = ""
    outcome: Number | None = None
    """1.0 = a wins, 0.0 = b wins, 0.5 = tie; ``None`` when a verdict is missing."""
    reason: str | None = None
    """Why the verdict is missing."""
    orders: list[Number] | None = None
    """Both orders' verdicts, from a's point of view."""
    consistent: bool | None = None


class PairwiseVerdicts(Document):
    """``judge_rubric`` comparing candidates two at a time (``judge_pairwise``; see
    :meth:`bakeoff.eval.judged.JudgeRubric.pairwise`)."""

    metric: str | None = None
    outcome_scale: str | None = None
    comparisons: list[list[str | Number]] = Field(default_factory=list)
    """``[a, b, outcome]`` per usable verdict, ready for a Bradley–Terry fit."""
    per_question: list[PairwiseQuestion] = Field(default_factory=list)
    summary: dict[str, PairSummary] = Field(default_factory=dict)
    asked: int = 0
    cache_hits: int = 0
    parse_failures: int = 0
    judge_errors: int = 0
    parse_failure_rate: Number | None = None
    missing_reasons: dict[str, int] = Field(default_factory=dict)
    calls: int | None = None


class LostQuestion(Document):
    """A question a candidate lost to the best other one (texts cut to 300 characters)."""

    question_id: str = ""
    question: str = ""
    reference: str = ""
    answer: str = ""
    other_answer: str = ""
    value: Number = 0.0
    other_value: Number = 0.0
    gap: Number = 0.0
    """How much better the other did (in the metric's direction)."""


class LostQuestions(Document):
    """Where one candidate loses (``error_analysis.lost.<c>``)."""

    versus: str = ""
    """The best other candidate (highest mean)."""
    n_lost: int = 0
    questions: list[LostQuestion] = Field(default_factory=list)
    """The clearest losses, largest gap first (at most 10)."""


class FailedQuestion(Document):
    """A question every candidate fails (``error_analysis.all_fail[]``)."""

    question_id: str = ""
    question: str = ""
    reference: str = ""
    values: dict[str, Number | None] = Field(default_factory=dict)
    answers: dict[str, str] = Field(default_factory=dict)


class ErrorAnalysis(Document):
    """Lost and all-fail questions on the headline metric (``error_analysis``; see
    :mod:`bakeoff.eval.errors`)."""

    metric: str | None = None
    fail_below: Number = 0.5
    higher_is_better: bool = True
    lost: dict[str, LostQuestions] = Field(default_factory=dict)
    all_fail: list[FailedQuestion] = Field(default_factory=list)


class Scores(RunDocument):
    """``scores.json``: every candidate's scores, the paired statistics, judge accounting, error analysis."""

    task: str | None = None
    """``qa`` or ``classification``."""
    metrics: list[str] = Field(default_factory=list)
    """Metric names in recipe order, then the retrieval metrics."""
    headline: str | None = None
    """The metric the verdict, error analysis and reports lead with."""
    headline_reason: str | None = None
    """Why it leads: ``set by eval.headline``, or what the references made scoring choose."""
    n_questions: int | None = None
    candidates: dict[str, CandidateScores] = Field(default_factory=dict)
    per_answer: dict[str, dict[str, dict[str, Number | None]]] = Field(default_factory=dict)
    """Candidate -> question id -> metric -> value (``None`` = missing)."""
    retrieval_metrics: list[str] = Field(default_factory=list)
    """The names in ``metrics`` that score retrieval (``hit_rate@k``, ``mrr``; only when some candidate
    retrieves and the questions say where their answer is)."""
    judge_pairwise: PairwiseVerdicts | None = None
    judge: JudgeAccounting | None = None
    statistics: Statistics | None = None
    error_analysis: ErrorAnalysis | None = None
    dropped_lines: int = 0
    """Unreadable lines of ``answers.jsonl`` left out by ``bakeoff score --skip-bad-lines``."""
    slices: Slices | None = None
    """The headline per source document and question field."""
    failure_causes: FailureCauses | None = None
    """Why failed answers failed, per candidate."""
    retention: Retention | None = None
    """The retention set's scores and each candidate's loss against the base candidate."""
    verdict: Verdict | None = None
    """The recommendation (``None`` for a run scored before verdicts)."""
    interaction: Interaction | None = None
    """Fine-tune × RAG, when the recipe holds the four cells."""
    served: dict[str, ServedParity] = Field(default_factory=dict)
    """Served form (``lora@q8_0``) -> its parity with the training-time candidate (``serve:`` in the recipe)."""

    # -- queries the readers share --------------------------------------------------------------------------
    def entry(self, candidate: str, metric: str | None) -> MetricSummary:
        """A candidate's summary of a metric (an empty one when it has none)."""
        cand = self.candidates.get(candidate)
        found = cand.metrics.get(metric) if cand is not None and metric is not None else None
        return found if found is not None else MetricSummary()

    def failed_candidates(self) -> dict[str, str]:
        """Candidate -> the first error, for each candidate whose every answer is an error."""
        return {name: c.failed for name, c in self.candidates.items() if c.failed is not None}

    def means(self, metric: str | None) -> dict[str, float]:
        """Candidate -> mean of ``metric``, for the candidates that have one (in document order); a failed
        candidate has none."""
        out = {}
        for name, cand in self.candidates.items():
            if cand.failed is not None:
                continue
            mean = self.entry(name, metric).mean
            if mean is not None:
                out[name] = mean
        return out

    def best_per_metric(self) -> dict[str, set[str]]:
        """For each metric, the candidate(s) with the highest mean (ties share the mark; nobody is best
        when every candidate ties or fewer than two have a value)."""
        best: dict[str, set[str]] = {}
        for metric in self.metrics:
            values = self.means(metric)
            if len(values) < 2:
                best[metric] = set()
                continue
            top = max(values.values())
            winners = {n for n, v in values.items() if abs(v - top) < 1e-12}
            best[metric] = winners if len(winners) < len(values) else set()
        return best

    def comparisons(self, metric: str | None) -> list[Comparison]:
        """The paired comparisons of ``metric`` (empty without statistics)."""
        if self.statistics is None or metric is None:
            return []
        return self.statistics.comparisons.get(metric) or []

    def judge_breakdown(self) -> dict[str, JudgeTotals | PairwiseVerdicts]:
        """Judged metric -> what the judge did for it, then ``judge_rubric (pairwise)`` when pairwise
        verdicts were asked (both carry ``asked``, ``calls``, ``cache_hits``, ``parse_failures``,
        ``parse_failure_rate``, ``judge_errors``)."""
        rows: dict[str, JudgeTotals | PairwiseVerdicts] = dict(self.judge.metrics) if self.judge else {}
        if self.judge_pairwise is not None:
            rows["judge_rubric (pairwise)"] = self.judge_pairwise
        return rows

    @property
    def confidence(self) -> float | None:
        """The intervals' coverage (``None`` for a run scored without statistics)."""
        return self.statistics.method.confidence if self.statistics is not None else None

