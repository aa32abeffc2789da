"""One class per metric.

Each metric scores one answer at a time with keyword arguments named after the data (``response``,
``reference``), declares its range, and returns a :class:`MetricResult` (a value plus a reason when the value
is missing). Corpus-level metrics (macro-F1) also implement :meth:`Metric.aggregate`. Scoring calls
:meth:`Metric.score_samples` with whole :class:`Sample` batches, which metrics that batch (embeddings) or
call a judge (:mod:`bakeoff.eval.judged`) override. A metric that needs a resource declares it in ``needs``
(``"embeddings"``: the recipe's embedding model reference; ``"judge"``: a :class:`~bakeoff.eval.judge.Judge`).
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from functools import cached_property
from typing import Any, ClassVar, Literal

__all__ = [
    "Accuracy",
    "Bleu",
    "Chrf",
    "ContainsReference",
    "ExactMatch",
    "HitRate",
    "MacroF1",
    "Metric",
    "MetricResult",
    "ReciprocalRank",
    "Rouge1",
    "Rouge2",
    "RougeL",
    "Sample",
    "SemanticSimilarity",
    "TokenF1",
    "classification_report",
    "context_matches",
    "normalize_answer",
    "retrieval_metrics",
]


@dataclass
class MetricResult:
    """A metric's value for one answer; ``value is None`` means missing, and ``reason`` says why.

    Judged metrics also say whether the judge was asked (``judged``; False when no verdict was needed, e.g. no
    contexts), why a value is missing (``failure``: ``"parse"`` when the judge's reply could not be used,
    ``"judge"`` when the judge could not be reached or failed) and whether the verdict came from the judge
    cache (``cached``).
    """

    value: float | None
    reason: str = ""
    failure: Literal["parse", "judge"] | None = None
    cached: bool = False
    judged: bool = False


@dataclass
class Sample:
    """Everything a metric may look at for one answer."""

    question_id: str
    question: str
    response: str
    reference: str
    contexts: list[str] | None = None  # retrieved passages (RAG candidates); None when there were none
    error: bool = False  # the candidate failed on this question (scored as an empty reply)


class Metric:
    """Base class: set ``name``, ``score_range`` and implement :meth:`score`."""

    name: ClassVar[str]
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    higher_is_better: ClassVar[bool] = True
    description: ClassVar[str] = ""
    needs: ClassVar[tuple[str, ...]] = ()  # resources the constructor takes: "embeddings", "judge"

    def score(self, *, response: str, reference: str) -> MetricResult:
        raise NotImplementedError

    def score_samples(self, samples: Sequence[Sample]) -> list[MetricResult]:
        """Score a batch of answers (default: one :meth:`score` call each)."""
        return [self.score(response=s.response, reference=s.reference) for s in samples]

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


class Chrf(Metric):
    """Sentence chrF (sacrebleu: character n-gram F-score, beta 2), scaled to [0, 1].

    Character n-grams reward partly right answers (inflections, numbers written slightly differently) that
    word-level BLEU and ROUGE score 0.
    """

    name = "chrf"
    description = "character n-gram F-score (sacrebleu chrF), 0-1"

    @cached_property
    def _chrf(self):
        from sacrebleu.metrics import CHRF

        return CHRF()

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        if not response.strip():
            return MetricResult(0.0, "empty response")
        return MetricResult(self._chrf.sentence_score(response, [reference]).score / 100.0)


class SemanticSimilarity(Metric):
    """Cosine similarity of response and reference embeddings (the recipe's ``embeddings:`` model).

    The embedder returns L2-normalised vectors, so the cosine is a dot product. Cosines can be slightly
    negative for unrelated texts; the value is kept as is (range -1..1), an empty response scores 0.
    """

    name = "semantic_similarity"
    description = "cosine similarity of embeddings (recipe `embeddings:` model)"
    score_range = (-1.0, 1.0)
    needs = ("embeddings", "ollama_host")

    def __init__(self, embeddings: Any = None, ollama_host: str | None = None) -> None:
        from bakeoff.models.refs import DEFAULT_EMBEDDINGS

        self.embeddings_ref = embeddings or DEFAULT_EMBEDDINGS
        self.ollama_host = ollama_host

    @cached_property
    def _embedder(self):
        from transformers.utils import logging as hf_logging

        from bakeoff.models.embeddings import load_embedder

        hf_logging.disable_progress_bar()  # scoring shows its own progress
        return load_embedder(self.embeddings_ref, self.ollama_host)

    def score(self, *, response: str, reference: str) -> MetricResult:
        return self.batch_score(responses=[response], references=[reference])[0]

    def batch_score(self, *, responses: Sequence[str], references: Sequence[str]) -> list[MetricResult]:
        if len(responses) != len(references):
            raise ValueError(f"{len(responses)} responses but {len(references)} references")
        for r, ref in zip(responses, references, strict=True):
            self._check(r, ref)
        todo = [i for i, r in enumerate(responses) if r.strip()]
        out = [MetricResult(0.0, "empty response") for _ in responses]
        if not todo:
            return out
        vectors = self._embedder.embed([responses[i] for i in todo] + [references[i] for i in todo])
        half = len(todo)
        for k, i in enumerate(todo):
            a, b = vectors[k], vectors[half + k]
            out[i] = MetricResult(max(-1.0, min(1.0, float(sum(x * y for x, y in zip(a, b, strict=True))))))
        return out

    def score_samples(self, samples: Sequence[Sample]) -> list[MetricResult]:
        return self.batch_score(
            responses=[s.response for s in samples], references=[s.reference for s in samples]
        )


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


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _same_source(retrieved: str, reference: str) -> bool:
    """Equal paths, or the retrieved path ends with the reference (``../data/doc.md`` vs ``doc.md``)."""
    retrieved, reference = retrieved.replace("\\", "/").strip("/"), reference.replace("\\", "/").strip("/")
    return retrieved == reference or retrieved.endswith("/" + reference)


def context_matches(context: Mapping[str, Any], *, passage: str | None, source: str | None) -> bool | None:
    """Whether a retrieved chunk supports the reference: None when there is nothing to compare with.

    A chunk matches when it comes from the reference ``source`` (if given) and holds the reference ``passage``
    (if given): the passage is inside the chunk, or the chunk covers at least half of the passage in one
    piece. Chunks and passages are both verbatim slices of the document, so the second case is a chunk
    whose span overlaps the passage's span by at least 50% of the passage — the passage was split across
    neighbouring chunks. Whitespace and case are ignored.
    """
    if not passage and not source:
        return None
    if source and not _same_source(str(context.get("source", "")), source):
        return False
    if not passage:
        return True
    wanted, text = _squash(passage), _squash(str(context.get("text", "")))
    if not wanted or wanted in text:
        return True
    match = SequenceMatcher(None, wanted, text, autojunk=False).find_longest_match(
        0, len(wanted), 0, len(text)
    )
    return match.size >= 0.5 * len(wanted)


def _first_match(
    contexts: Sequence[Mapping[str, Any]], passage: str | None, source: str | None
) -> int | None:
    """1-based rank of the first matching context, 0 when none matches, None when nothing can be compared."""
    if not passage and not source:
        return None
    for rank, context in enumerate(contexts, 1):
        if context_matches(context, passage=passage, source=source):
            return rank
    return 0


class HitRate(Metric):
    """1 when one of the k retrieved chunks holds the reference passage (or, without a passage, comes from
    the reference source); the mean over questions is the hit rate@k."""

    score_range = (0.0, 1.0)
    description = "reference passage/source among the k retrieved chunks"

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.name = f"hit_rate@{k}"

    def score(  # type: ignore[override]
        self,
        *,
        retrieved_contexts: Sequence[Mapping[str, Any]],
        reference_passage: str | None = None,
        reference_source: str | None = None,
    ) -> MetricResult:
        rank = _first_match(list(retrieved_contexts)[: self.k], reference_passage, reference_source)
        if rank is None:
            return MetricResult(None, "the question has no reference passage or source")
        return MetricResult(float(rank > 0))


class ReciprocalRank(Metric):
    """1/rank of the first retrieved chunk that holds the reference passage (0 if none does); the mean over
    questions is the mean reciprocal rank (MRR)."""

    name = "mrr"
    score_range = (0.0, 1.0)
    description = "mean reciprocal rank of the reference passage/source"

    def score(  # type: ignore[override]
        self,
        *,
        retrieved_contexts: Sequence[Mapping[str, Any]],
        reference_passage: str | None = None,
        reference_source: str | None = None,
    ) -> MetricResult:
        rank = _first_match(list(retrieved_contexts), reference_passage, reference_source)
        if rank is None:
            return MetricResult(None, "the question has no reference passage or source")
        return MetricResult(1.0 / rank if rank else 0.0)


def retrieval_metrics(k: int) -> list[Metric]:
    """The retrieval metrics of a candidate that retrieves ``k`` chunks: ``hit_rate@k`` and ``mrr``."""
    return [HitRate(k), ReciprocalRank()]


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
