"""The analysis sections of ``scores.json`` that break the headline down: per source document and question field
(``slices``), why answers failed (``failure_causes``) and the retention set (``retention``).

Layout::

    slices                          Slices: metric, by.<field>.<value>.<candidate> (SliceCell)
    failure_causes                  FailureCauses: metric, fail_below, counts.<c>.<cause>, per_answer.<c>.<q>
    retention                       Retention: questions, metric, base, candidates.<c> (SliceCell),
                                    per_answer.<c>.<q>.<m>, comparisons[] (RetentionLoss, candidate vs base)

Every section is optional, so a ``scores.json`` written before they existed still loads.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from bakeoff.run.documents.base import Document, Number

__all__ = ["CAUSES", "Cause", "FailureCauses", "Retention", "RetentionLoss", "SliceCell", "Slices"]

Cause = Literal["error", "truncated", "retrieval miss", "context ignored", "not learned", "wrong"]
CAUSES: tuple[str, ...] = ("retrieval miss", "context ignored", "not learned", "truncated", "error", "wrong")
"""Every cause, in the order tables show them."""


class SliceCell(Document):
    """One candidate's headline on one slice of the questions (``slices.by.<field>.<value>.<c>``)."""

    mean: Number | None = None
    n: int = 0
    """Questions of the slice with a value."""
    ci: list[Number] | None = None
    """Bootstrap interval of the mean (``None`` with fewer than two values)."""


class Slices(Document):
    """The headline per source document and per named question field (``slices``; see
    :mod:`bakeoff.eval.by_source`)."""

    metric: str | None = None
    by: dict[str, dict[str, dict[str, SliceCell]]] = Field(default_factory=dict)
    """Field (``source`` first, then ``eval.slice_by``) -> value -> candidate -> cell."""
    questions: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Field -> value -> questions in that slice."""

    def table(self, field: str = "source") -> dict[str, dict[str, SliceCell]]:
        """Value -> candidate -> cell for one field (empty when the run has no such field)."""
        return self.by.get(field, {})


class FailureCauses(Document):
    """Why each failed answer failed (``failure_causes``; see :mod:`bakeoff.eval.causes`).

    An answer failed when its headline value is below ``fail_below`` (above it for a lower-is-better metric)
    or missing. Causes: ``error`` (the answer record has an error), ``truncated`` (cut at max_new_tokens),
    ``retrieval miss`` (a retrieving candidate whose top-k did not hold the supporting passage),
    ``context ignored`` (the passage was retrieved, the answer is still wrong), ``not learned`` (a closed-book
    candidate), ``wrong`` (a retrieving candidate on a question with no passage or source to check).
    """

    metric: str | None = None
    fail_below: Number = 0.5
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    """Candidate -> cause -> failed answers (causes with none are left out)."""
    failed: dict[str, int] = Field(default_factory=dict)
    """Candidate -> failed answers."""
    answered: dict[str, int] = Field(default_factory=dict)
    """Candidate -> answers scored."""
    retrieves: dict[str, bool] = Field(default_factory=dict)
    """Candidate -> whether it retrieves (``retrieval miss`` / ``context ignored`` apply)."""
    per_answer: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Candidate -> question id -> cause, for the failed answers."""


class RetentionLoss(Document):
    """One candidate against the base candidate on the retention set (``retention.comparisons[]``)."""

    candidate: str = ""
    base: str = ""
    n: int = 0
    """Retention questions both have a value for."""
    mean: Number | None = None
    base_mean: Number | None = None
    delta: Number = 0.0
    """``mean(candidate - base)`` on the shared questions, in the metric's direction (negative = worse for a
    higher-is-better metric)."""
    ci: list[Number] | None = None
    """Paired bootstrap interval of ``delta``."""
    p: Number = 1.0
    """Paired permutation test."""
    p_holm: Number = 1.0
    """``p`` corrected with Holm's method over the candidates."""
    significant: bool = False
    """``p_holm`` below the run's alpha."""
    lost: bool = False
    """Significantly worse than the base candidate."""


class Retention(Document):
    """A second question set of general questions, answered by every candidate and scored on its own
    (``retention``; see :mod:`bakeoff.eval.retention`): what fine-tuning broke."""

    questions: str | None = None
    """The retention file (``eval.retention``)."""
    n_questions: int = 0
    metric: str | None = None
    """The metric losses are tested on (the run's headline)."""
    metrics: list[str] = Field(default_factory=list)
    base: str | None = None
    """The candidate losses are measured against (prompt-only on the base model)."""
    candidates: dict[str, SliceCell] = Field(default_factory=dict)
    """Candidate -> its mean of ``metric`` with a bootstrap interval."""
    per_answer: dict[str, dict[str, dict[str, Number | None]]] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)
    """Candidate -> retention answers that failed."""
    higher_is_better: bool = True
    alpha: Number = 0.05
    comparisons: list[RetentionLoss] = Field(default_factory=list)
    """Each other candidate against ``base``, Holm-corrected over them."""
