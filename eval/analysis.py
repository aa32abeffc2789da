"""The sections that break a run's headline down, added by scoring after the error analysis: per document and
question field (:mod:`bakeoff.eval.by_source`) and why answers failed (:mod:`bakeoff.eval.causes`). The
retention set is scored by the runner (:mod:`bakeoff.eval.retention`), since it needs answers of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bakeoff.core import Question
from bakeoff.run.documents.scores import Scores

__all__ = ["add_breakdowns"]


def add_breakdowns(
    scores: Scores,
    questions: Sequence[Question],
    rows_by_candidate: Mapping[str, Sequence[dict[str, Any]]],
    settings: Any,
    *,
    retrieving: Sequence[str] = (),
) -> None:
    """Fill ``scores.slices`` and ``scores.failure_causes``.

    Args:
        scores: the scores document so far (headline, per-answer values, retrieval metrics).
        questions: the evaluation set.
        rows_by_candidate: candidate -> answer rows.
        settings: the :class:`~bakeoff.eval.scoring.ScoringSettings` (``slice_by``, ``fail_below``,
            ``statistics``).
        retrieving: the candidates that retrieve.
    """
    from bakeoff.eval.by_source import slice_scores
    from bakeoff.eval.causes import failure_causes
    from bakeoff.eval.settings import StatisticsSpec

    spec = getattr(settings, "statistics", None) or StatisticsSpec()
    scores.slices = slice_scores(
        scores,
        questions,
        rows_by_candidate,
        fields=tuple(getattr(settings, "slice_by", ()) or ()),
        resamples=spec.resamples,
        confidence=spec.confidence,
        seed=spec.seed,
    )
    scores.failure_causes = failure_causes(
        scores, rows_by_candidate, fail_below=getattr(settings, "fail_below", 0.5), retrieving=retrieving
    )
