"""The metric contract, and the metrics that compare an answer with its reference text.

A metric is one class. It declares on the class what the registry (:mod:`bakeoff.eval`), the recipe validator
and ``bakeoff metrics`` need to know — ``name``, ``task``, ``needs``, ``default``, ``description``,
``score_range`` — and implements :meth:`Metric.score` with keyword arguments named after the data it reads
(the fields of :class:`Sample`: ``response``, ``reference``, ``contexts``, ``retrieved_contexts``,
``reference_passage``, ``reference_source``, ``label``, ...). Scoring calls every metric the same way,
:meth:`Metric.score_samples` on a whole batch; metrics that batch (embeddings) or call a judge
(:mod:`bakeoff.eval.judged`) override it, corpus-level metrics (macro-F1) implement
:meth:`Metric.score_corpus`. What a metric needs to be built (a judge, the embedding model, the label set) it
takes as keyword parameters of its constructor, named after the resource (see :data:`RESOURCES`).

Light on purpose: the registry imports this module while validating recipes; metrics import their libraries
(sacrebleu, rouge-score, the embedder) when they first score. The classes below are registered in the order
they are defined, which is the order of the default metrics in ``scores.json``.
"""

from __future__ import annotations

import inspect
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, ClassVar, Literal

__all__ = [
    "NEEDS",
    "RESOURCES",
    "Bleu",
    "Chrf",
    "ContainsReference",
    "ExactMatch",
    "Metric",
    "MetricResult",
    "Rouge1",
    "Rouge2",
    "RougeL",
    "Sample",
    "SemanticSimilarity",
    "TokenF1",
    "TokenRecall",
    "normalize_answer",
]

# What a metric may declare in `needs`, and what that means for a recipe (shown by `bakeoff metrics`).
NEEDS: dict[str, str] = {
    "judge": "an LLM judge: the recipe needs `judge:`",
    "rubric": "a rubric: `judge:` as a mapping with `rubric:`",
    "embeddings": "the recipe's `embeddings:` model",
    "contexts": "retrieved passages: only answers of candidates that retrieve get a value",
    "reference_passage": "questions with a `passage` or `source`",
}

# What scoring offers a metric's constructor; a metric takes those it names as keyword parameters.
RESOURCES: dict[str, str] = {
    "judge": "the recipe's judge (a bakeoff.eval.judge.Judge)",
    "embeddings": "the recipe's embedding model reference",
    "ollama_host": "the recipe's Ollama server (for ollama: embeddings), or None",
    "labels": "the recipe's label set (classification)",
    "k": "how many chunks the candidate retrieves (retrieval metrics)",
}


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
    """Everything a metric may look at for one answer; :meth:`Metric.score` takes these by name."""

    question_id: str
    question: str
    response: str  # the answer text; "" when the candidate failed on the question
    reference: str  # the reference answer (classification: the gold label)
    contexts: list[str] | None = None  # texts of the retrieved passages; None when there were none
    error: bool = False  # the candidate failed on this question (scored as an empty reply)
    retrieved_contexts: list[Mapping[str, Any]] = field(default_factory=list)  # chunks: text, source, score
    reference_passage: str | None = None  # the question's supporting passage, if the question file has one
    reference_source: str | None = None  # the file that passage comes from
    label: str | None = None  # the label parsed from the answer (classification); None when unparsed


SAMPLE_FIELDS = tuple(f.name for f in fields(Sample))


class Metric:
    """Base class of every metric, built in or plugged in.

    Declare on the class:

    * ``name``: what a recipe writes under ``eval.metrics``;
    * ``task``: ``"qa"``, ``"classification"`` or ``None`` (any task);
    * ``needs``: keys of :data:`NEEDS` (a judge, a rubric, embeddings, retrieved contexts, reference passages);
    * ``default``: scored when a recipe names no metrics (built-ins only);
    * ``description``, ``score_range`` and ``higher_is_better``;
    * rarely: ``corpus_level`` (one value per candidate, from :meth:`score_corpus`), ``automatic`` (scored,
      unnamed, for every candidate that retrieves; built-ins only) and ``paired_test`` (``"mcnemar"`` for 0/1
      correctness that should get McNemar's test instead of the permutation test).

    Then implement :meth:`score` with keyword parameters named after :class:`Sample` fields, returning a
    :class:`MetricResult`; raise ``ValueError`` for bad input.
    """

    name: ClassVar[str]
    task: ClassVar[Literal["qa", "classification"] | None] = None
    needs: ClassVar[tuple[str, ...]] = ()
    default: ClassVar[bool] = False
    description: ClassVar[str] = ""
    score_range: ClassVar[tuple[float, float]] = (0.0, 1.0)
    higher_is_better: ClassVar[bool] = True
    corpus_level: ClassVar[bool] = False
    automatic: ClassVar[bool] = False
    paired_test: ClassVar[Literal["permutation", "mcnemar"]] = "permutation"

    def __init__(self) -> None:
        """Subclasses that need resources take them as keyword parameters named as in :data:`RESOURCES`."""

    @classmethod
    def unavailable(cls) -> str | None:
        """Why the metric cannot run on this machine (data or a program it needs is missing), else None.

        Checked when a recipe names the metric, so the run is refused before it starts; keep it cheap (look
        for files, never load them) and say what to install.
        """
        return None

    def score(self, **data: Any) -> MetricResult:
        """Score one answer from the :class:`Sample` fields this method names as keyword parameters."""
        raise NotImplementedError

    @classmethod
    def data_fields(cls) -> tuple[str, ...]:
        """The :class:`Sample` fields :meth:`score` takes (all of them when it takes ``**data``)."""
        params = list(inspect.signature(cls.score).parameters.values())[1:]  # after self
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return SAMPLE_FIELDS
        return tuple(p.name for p in params if p.kind is not p.VAR_POSITIONAL)

    def score_samples(self, samples: Sequence[Sample]) -> list[MetricResult]:
        """Score a batch of answers (default: one :meth:`score` call each, with the fields it names)."""
        names = self.data_fields()
        return [self.score(**{n: getattr(s, n) for n in names}) for s in samples]

    def score_corpus(self, samples: Sequence[Sample]) -> float | None:
        """The value of a ``corpus_level`` metric over a set of answers."""
        raise NotImplementedError(f"{self.name} is not corpus-level")

    def batch_score(self, *, responses: Sequence[str], references: Sequence[str]) -> list[MetricResult]:
        """Score response/reference pairs (a shortcut for metrics that read only those two)."""
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
    task = "qa"
    default = True
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
    task = "qa"
    default = True
    description = "unigram overlap F1 (rouge-score)"


class Rouge2(_Rouge):
    """ROUGE-2 F-measure (rouge-score, Porter stemming)."""

    name = variant = "rouge2"
    task = "qa"
    default = True
    description = "bigram overlap F1 (rouge-score)"


class RougeL(_Rouge):
    """ROUGE-L F-measure: longest common subsequence (rouge-score, Porter stemming)."""

    name = variant = "rougeL"
    task = "qa"
    default = True
    description = "longest-common-subsequence F1 (rouge-score)"


class Chrf(Metric):
    """Sentence chrF (sacrebleu: character n-gram F-score, beta 2), scaled to [0, 1].

    Character n-grams reward partly right answers (inflections, numbers written slightly differently) that
    word-level BLEU and ROUGE score 0.
    """

    name = "chrf"
    task = "qa"
    default = True
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


class ExactMatch(Metric):
    """1 when the normalised response equals the normalised reference."""

    name = "exact_match"
    task = "qa"
    default = True
    description = "normalised exact match"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        return MetricResult(float(normalize_answer(response) == normalize_answer(reference)))


def _shared_tokens(pred: list[str], gold: list[str]) -> int:
    """Tokens the answer and the reference have in common, counted with multiplicity (SQuAD's overlap)."""
    return sum((Counter(pred) & Counter(gold)).values())


class TokenF1(Metric):
    """SQuAD token F1 between normalised response and reference."""

    name = "token_f1"
    task = "qa"
    default = True
    description = "SQuAD token F1"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        pred, gold = normalize_answer(response).split(), normalize_answer(reference).split()
        if not pred or not gold:
            return MetricResult(float(pred == gold))
        common = _shared_tokens(pred, gold)
        if common == 0:
            return MetricResult(0.0)
        precision, recall = common / len(pred), common / len(gold)
        return MetricResult(2 * precision * recall / (precision + recall))


class TokenRecall(Metric):
    """The share of the reference's tokens found in the answer (SQuAD-normalised, counted with
    multiplicity): 1.0 when every reference word is there, however long the answer around it.

    For short references ("France", "William the Conqueror") against full-sentence answers, where ROUGE-L
    and token F1 punish the correct sentence for its length. It does not punish padding or wrong extra
    words either: read it with a precision-style metric beside it.
    """

    name = "token_recall"
    task = "qa"
    default = True
    description = "share of the reference's tokens in the answer (SQuAD-normalised)"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        gold = normalize_answer(reference).split()
        if not gold:
            return MetricResult(None, "empty reference")
        return MetricResult(_shared_tokens(normalize_answer(response).split(), gold) / len(gold))


class ContainsReference(Metric):
    """1 when the normalised reference appears inside the normalised response (verbose but right answers)."""

    name = "contains"
    task = "qa"
    default = True
    description = "reference contained in the answer (normalised)"

    def score(self, *, response: str, reference: str) -> MetricResult:
        self._check(response, reference)
        ref = normalize_answer(reference)
        if not ref:
            return MetricResult(None, "empty reference")
        return MetricResult(float(f" {ref} " in f" {normalize_answer(response)} "))


class SemanticSimilarity(Metric):
    """Cosine similarity of response and reference embeddings (the recipe's ``embeddings:`` model).

    The embedder returns L2-normalised vectors, so the cosine is a dot product. Cosines can be slightly
    negative for unrelated texts; the value is kept as is (range -1..1), an empty response scores 0.
    """

    name = "semantic_similarity"
    task = "qa"
    default = True
    description = "cosine similarity of embeddings (recipe `embeddings:` model)"
    score_range = (-1.0, 1.0)
    needs = ("embeddings",)

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
