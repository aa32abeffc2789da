"""One class per metric.

Each metric scores one answer at a time with keyword arguments named after the data (``response``,
``reference``), declares its range, and returns a :class:`MetricResult` (a value plus a reason when the value
is missing). Corpus-level metrics (macro-F1) also implement :meth:`Metric.aggregate`.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import ClassVar

__all__ = [
    "Accuracy",
    "Bleu",
    "ContainsReference",
    "ExactMatch",
    "MacroF1",
    "Metric",
    "MetricResult",
    "Rouge1",
    "Rouge2",
    "RougeL",
    "TokenF1",
    "classification_report",
    "normalize_answer",
]


@dataclass
class MetricResult:
    """A metric's value for one answer; ``value is None`` means missing, and ``reason`` says why."""

    value: float | None
    reason: str = ""


class Metric:
    """Base class: set ``name``, ``score_range`` and implement :meth:`score`."""

    name: ClassVar[str]
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    higher_is_better: ClassVar[bool] = True
    description: ClassVar[str] = ""

    def score(self, *, response: str, reference: str) -> MetricResult:
        raise NotImplementedError

    def batch_score(self, *, responses: Sequence[str], references: Sequence[str]) -> list[MetricResult]:
        if len(responses) != len(references):
            raise ValueError(f"{len(responses)} responses but {len(references)} references")
        return [self.score(response=r, reference=ref) for r, ref in zip(responses, references, strict=True)]

    @staticmethod
    def _check(response: object, reference: object) -> None:
        if not isinstance(response, str) or not isinstance(reference, str):
            raise ValueError("response and reference must be strings")


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, no punctuation, no articles, single spaces."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


class Bleu(Metric):
    """Sentence BLEU (sacrebleu, exponential smoothing), scaled to [0, 1]."""

    name = "bleu"
    description = "sentence BLEU (sacrebleu), 0-1"

    @cached_property
    def _bleu(self):
        from sacrebleu.metrics import BLEU

        return BLEU(effective_order=True)

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        if not response.strip():
            return MetricResult(0.0, "empty response")
        return MetricResult(self._bleu.sentence_score(response, [reference]).score / 100.0)


class _Rouge(Metric):
    variant: ClassVar[str]

    @cached_property
    def _scorer(self):
        from rouge_score import rouge_scorer

        return rouge_scorer.RougeScorer([self.variant], use_stemmer=True)

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        return MetricResult(self._scorer.score(reference, response)[self.variant].fmeasure)


class Rouge1(_Rouge):
    """ROUGE-1 F-measure (rouge-score, Porter stemming)."""

    name = variant = "rouge1"
    description = "unigram overlap F1 (rouge-score)"


class Rouge2(_Rouge):
    """ROUGE-2 F-measure (rouge-score, Porter stemming)."""

    name = variant = "rouge2"
    description = "bigram overlap F1 (rouge-score)"


class RougeL(_Rouge):
    """ROUGE-L F-measure: longest common subsequence (rouge-score, Porter stemming)."""

    name = variant = "rougeL"
    description = "longest-common-subsequence F1 (rouge-score)"


class ExactMatch(Metric):
    """1 when the normalised response equals the normalised reference."""

    name = "exact_match"
    description = "normalised exact match"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        return MetricResult(float(normalize_answer(response) == normalize_answer(reference)))


class ContainsReference(Metric):
    """1 when the normalised reference appears inside the normalised response (verbose but right answers)."""

    name = "contains"
    description = "reference contained in the answer (normalised)"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        ref = normalize_answer(reference)
        if not ref:
            return MetricResult(None, "empty reference")
        return MetricResult(float(f" {ref} " in f" {normalize_answer(response)} "))


class TokenF1(Metric):
    """SQuAD token F1 between normalised response and reference."""

    name = "token_f1"
    description = "SQuAD token F1"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        pred, gold = normalize_answer(response).split(), normalize_answer(reference).split()
        if not pred or not gold:
            return MetricResult(float(pred == gold))
        common = sum((Counter(pred) & Counter(gold)).values())
        if common == 0:
            return MetricResult(0.0)
        precision, recall = common / len(pred), common / len(gold)
        return MetricResult(2 * precision * recall / (precision + recall))


class Accuracy(Metric):
    """1 when the predicted label equals the gold label; an unparseable prediction is wrong."""

    name = "accuracy"
    description = "label accuracy"

    def score(self, *, response: str | None, reference: str) -> MetricResult:  # type: ignore[override]
        if response is None:
            return MetricResult(0.0, "no label could be parsed from the answer")
        return MetricResult(float(response == reference))


class MacroF1(Metric):
    """Macro-averaged F1 over the label set (a corpus-level metric: see :meth:`aggregate`)."""

    name = "macro_f1"
    description = "macro-averaged F1 over labels"
    corpus_level: ClassVar[bool] = True

    def score(self, *, response: str | None, reference: str) -> MetricResult:  # type: ignore[override]
        return MetricResult(None, "macro-F1 is defined over the whole set")

    def aggregate(
        self, *, predictions: Sequence[str | None], references: Sequence[str], labels: Sequence[str]
    ) -> float:
        return classification_report(predictions=predictions, references=references, labels=labels)[
            "macro_f1"
        ]


def classification_report(
    *, predictions: Sequence[str | None], references: Sequence[str], labels: Sequence[str]
) -> dict:
    """Accuracy, per-label precision/recall/F1/support, macro-F1 and the confusion matrix.

    A prediction of ``None`` (unparseable) is counted wrong and shown as the pseudo-label ``"(none)"``.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    per_label: dict[str, dict[str, float]] = {}
    for label in labels:
        tp = sum(1 for p, r in zip(predictions, references, strict=True) if p == label and r == label)
        fp = sum(1 for p, r in zip(predictions, references, strict=True) if p == label and r != label)
        fn = sum(1 for p, r in zip(predictions, references, strict=True) if p != label and r == label)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_label[label] = {"precision": precision, "recall": recall, "f1": f1, "support": tp + fn}
    confusion: dict[str, dict[str, int]] = {
        gold: Counter(
            "(none)" if p is None else p for p, r in zip(predictions, references, strict=True) if r == gold
        )
        for gold in labels
    }
    n = len(references)
    return {
        "accuracy": sum(p == r for p, r in zip(predictions, references, strict=True)) / n if n else 0.0,
        "macro_f1": sum(v["f1"] for v in per_label.values()) / len(labels) if labels else 0.0,
        "per_label": per_label,
        "confusion": {k: dict(v) for k, v in confusion.items()},
        "unparsed": sum(p is None for p in predictions),
        "n": n,
    }
