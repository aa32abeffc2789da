"""Retrieval metrics: did a candidate that retrieves find the question's supporting passage, or its answer?

``hit_rate@k`` and ``mrr`` compare the retrieved chunks (:attr:`~bakeoff.eval.metrics.Sample.retrieved_contexts`)
with the question's ``passage``/``source``; ``answer_in_context@k`` looks for a short reference answer inside
the retrieved chunks. No LLM is needed. They are ``automatic``: scoring adds them for every candidate that
retrieves (the passage metrics when some question has a passage or source, answer-in-context for QA); a
recipe does not name them.

When a chunk holds the passage. Chunks and passages are both verbatim slices of one document (chunks carry
their character offsets, ``start``/``end``, from :mod:`bakeoff.rag.corpus`), so where they overlap they share
one contiguous run of text, and the longest common run of the two (whitespace and case ignored) *is* their
overlap, located in the passage. A chunk holds the passage when that overlap covers most (at least
:data:`MOST`) of the chunk — the chunk is a piece of the passage — or most of the passage — the passage sits
in the chunk. A passage longer than a chunk (a 1,500-character paragraph, 512-character chunks) is never
"mostly inside" one chunk; it counts as retrieved at the first rank where the retrieved chunks so far,
together, cover most of it (overlapping chunks counted once). Pieces shorter than :data:`MIN_PIECE`
characters do not count towards that cover (two unrelated texts share short runs such as " of the ").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from difflib import SequenceMatcher
from typing import Any

from bakeoff.eval.metrics import Metric, MetricResult, normalize_answer

__all__ = [
    "MAX_ANSWER_TOKENS",
    "MIN_PIECE",
    "MOST",
    "AnswerInContext",
    "HitRate",
    "ReciprocalRank",
    "answer_in_contexts",
    "context_matches",
    "passage_rank",
]

MOST = 0.5  # "most of": the share of a chunk, or of a passage, an overlap must cover
MIN_PIECE = 32  # characters: a shorter shared run is chance, not a piece of the passage
MAX_ANSWER_TOKENS = 10  # answer_in_context@k scores references up to this many (normalised) tokens


def _squash(text: str) -> str:
    return " ".join(text.split()).casefold()


def _same_source(retrieved: str, reference: str) -> bool:
    """Equal paths, or the retrieved path ends with the reference (``../data/doc.md`` vs ``doc.md``)."""
    retrieved, reference = retrieved.replace("\\", "/").strip("/"), reference.replace("\\", "/").strip("/")
    return retrieved == reference or retrieved.endswith("/" + reference)


def _overlap(wanted: str, text: str) -> tuple[int, int]:
    """Where the chunk ``text`` overlaps the passage ``wanted`` (both squashed): (start in the passage, size)."""
    if not wanted or not text:
        return 0, 0
    at = wanted.find(text)
    if at >= 0:  # the whole chunk is a piece of the passage
        return at, len(text)
    if wanted in text:
        return 0, len(wanted)
    match = SequenceMatcher(None, wanted, text, autojunk=False).find_longest_match(
        0, len(wanted), 0, len(text)
    )
    return match.a, match.size


def _holds(start_size: tuple[int, int], wanted: str, text: str) -> bool:
    size = start_size[1]
    return size > 0 and (size >= MOST * len(wanted) or size >= MOST * len(text))


def context_matches(context: Mapping[str, Any], *, passage: str | None, source: str | None) -> bool | None:
    """Whether one retrieved chunk holds the reference passage: None when there is nothing to compare with.

    A chunk matches when it comes from the reference ``source`` (if given) and (if a ``passage`` is given)
    their overlap covers most of the chunk or most of the passage (see the module docstring). Whitespace and
    case are ignored.
    """
    if not passage and not source:
        return None
    if source and not _same_source(str(context.get("source", "")), source):
        return False
    if not passage:
        return True
    wanted, text = _squash(passage), _squash(str(context.get("text", "")))
    if not wanted:
        return True
    return _holds(_overlap(wanted, text), wanted, text)


def _covered(pieces: list[tuple[int, int]]) -> int:
    """Characters covered by the union of (start, size) pieces."""
    total, reach = 0, 0
    for start, size in sorted(pieces):
        end = start + size
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def passage_rank(
    contexts: Sequence[Mapping[str, Any]], passage: str | None, source: str | None
) -> int | None:
    """1-based rank at which the retrieved chunks first hold the passage (one chunk holds it, or the chunks
    so far together cover most of it); 0 when they never do; None when nothing can be compared."""
    if not passage and not source:
        return None
    wanted = _squash(passage or "")
    pieces: list[tuple[int, int]] = []
    for rank, context in enumerate(contexts, 1):
        if source and not _same_source(str(context.get("source", "")), source):
            continue
        if not wanted:
            return rank
        text = _squash(str(context.get("text", "")))
        found = _overlap(wanted, text)
        if _holds(found, wanted, text):
            return rank
        if found[1] >= min(MIN_PIECE, len(text)):
            pieces.append(found)
            if _covered(pieces) >= MOST * len(wanted):
                return rank
    return 0


def answer_in_contexts(reference: str, contexts: Sequence[str]) -> bool | None:
    """Whether the SQuAD-normalised ``reference`` occurs, as whole words, in one of the normalised
    ``contexts``; None when the reference is empty or longer than :data:`MAX_ANSWER_TOKENS` tokens."""
    ref = normalize_answer(reference)
    if not ref or len(ref.split()) > MAX_ANSWER_TOKENS:
        return None
    return any(f" {ref} " in f" {normalize_answer(text)} " for text in contexts)


class HitRate(Metric):
    """1 when the k retrieved chunks hold the reference passage — one chunk holds it, or together they cover
    most of it (see the module docstring) — or, without a passage, one comes from the reference source; the
    mean over questions is the hit rate@k."""

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
        rank = passage_rank(list(retrieved_contexts)[: self.k], reference_passage, reference_source)
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
        rank = passage_rank(list(retrieved_contexts), reference_passage, reference_source)
        if rank is None:
            return MetricResult(None, "the question has no reference passage or source")
        return MetricResult(1.0 / rank if rank else 0.0)



class AnswerInContext(Metric):
    """1 when the short reference answer (SQuAD-normalised: lower case, no punctuation, no articles) occurs
    as whole words in one of the k retrieved chunks; the mean over questions is the answer-in-context
    rate@k. It needs no passage, and says whether the answer was there to be read even when the passage
    metrics cannot tell. Missing for references longer than :data:`MAX_ANSWER_TOKENS` tokens (a sentence is
    rarely copied verbatim)."""

    name = "answer_in_context@k"  # an instance is named after its k: answer_in_context@4
    task = "qa"
    needs = ("contexts",)
    automatic = True
    description = f"short reference (<= {MAX_ANSWER_TOKENS} tokens, normalised) inside the k retrieved chunks"

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        self.k = k
        self.name = f"answer_in_context@{k}"  # type: ignore[misc]

    def score(  # type: ignore[override]
        self, *, retrieved_contexts: Sequence[Mapping[str, Any]], reference: str
    ) -> MetricResult:
        self._check("", reference)
        texts = [str(c.get("text", "")) for c in list(retrieved_contexts)[: self.k]]
        found = answer_in_contexts(reference, texts)
        if found is None:
            return MetricResult(None, f"the reference is empty or longer than {MAX_ANSWER_TOKENS} tokens")
        return MetricResult(float(found))
