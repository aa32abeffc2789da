"""Retrieval metrics: did a candidate that retrieves find the question's supporting passage?

``hit_rate@k`` and ``mrr`` compare the retrieved chunks (:attr:`~bakeoff.eval.metrics.Sample.retrieved_contexts`)
with the question's ``passage``/``source``; no LLM is needed. They are ``automatic``: scoring adds them for
every candidate that retrieves, when some question has a passage or source; a recipe does not name them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any

from bakeoff.eval.metrics import Metric, MetricResult

__all__ = ["HitRate", "ReciprocalRank", "context_matches"]


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

    name = "hit_rate@k"  # an instance is named after its k: hit_rate@4
    needs = ("contexts", "reference_passage")
    automatic = True
    description = "reference passage/source among the k retrieved chunks"

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.name = f"hit_rate@{k}"  # type: ignore[misc]

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
    needs = ("contexts", "reference_passage")
    automatic = True
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

