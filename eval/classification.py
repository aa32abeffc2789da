"""Classification metrics: accuracy, macro-F1, and the per-label report shown by ``bakeoff show``.

They read the label parsed from each answer (:attr:`~bakeoff.eval.metrics.Sample.label`, ``None`` when none
could be parsed or the candidate failed) against the gold label (the question's ``reference``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bakeoff.eval.metrics import Metric, MetricResult, Sample

__all__ = ["Accuracy", "MacroF1", "classification_report"]


class Accuracy(Metric):
    """1 when the predicted label equals the gold label; an unparseable prediction is wrong."""

    name = "accuracy"
    task = "classification"
    default = True
    description = "label accuracy"
    paired_test = "mcnemar"

    def score(self, *, label: str | None, reference: str) -> MetricResult:  # type: ignore[override]
        if label is None:
            return MetricResult(0.0, "no label could be parsed from the answer")
        return MetricResult(float(label == reference))


class MacroF1(Metric):
    """Macro-averaged F1 over the label set (a corpus-level metric: see :meth:`score_corpus`)."""

    name = "macro_f1"
    task = "classification"
    default = True
    description = "macro-averaged F1 over labels"
    corpus_level = True

    def __init__(self, labels: Sequence[str] | None = None) -> None:
        self.labels = list(labels or [])

    def score(self, *, label: str | None, reference: str) -> MetricResult:  # type: ignore[override]
        return MetricResult(None, "macro-F1 is defined over the whole set")

    def score_corpus(self, samples: Sequence[Sample]) -> float:
        return self.aggregate(
            predictions=[s.label for s in samples], references=[s.reference for s in samples], labels=self.labels
        )

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
