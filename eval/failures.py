"""Failed candidates: a candidate whose every answer is an error produced no result, and says so.

An unreachable server, a rejected API key or a model that cannot load makes every answer of a candidate an
error. Such a candidate is not a candidate that scored 0: scoring marks it (``candidates.<c>.failed``, the
first error), :meth:`~bakeoff.run.documents.scores.Scores.means` leaves it out (so it is never marked best,
named best on the Runs page or ranked), the table shows ``failed`` in its column, ``bakeoff run`` prints one
``error:`` line per failed candidate and exits 1, and the run is ``partial`` (some candidates failed) or
``failed`` (all did). :func:`failure_sentences` is the one wording every reader (the run's output, the
verdict, the report) shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bakeoff.io import redact
from bakeoff.run.documents.scores import Scores

__all__ = ["failure_sentences", "run_status"]

_MAX_ERROR = 300


def failure_sentences(scores: Scores | Mapping[str, Any] | None) -> list[str]:
    """One sentence per failed candidate, in the run's order: which candidate, how many answers, the first
    error (cut to 300 characters). Empty when every candidate answered at least once."""
    if not scores:
        return []
    scores = Scores.of(scores)
    out = []
    for name, error in scores.failed_candidates().items():
        n = scores.candidates[name].n or 0
        first = redact(" ".join(error.split()))
        if len(first) > _MAX_ERROR:
            first = first[: _MAX_ERROR - 1] + "…"
        every = "its only answer is an error" if n == 1 else f"all {n} of its answers are errors"
        out.append(f"candidate {name!r} failed: {every} (first: {first})")
    return out


def run_status(scores: Scores | Mapping[str, Any]) -> str:
    """``complete`` when every candidate answered, ``partial`` when some failed, ``failed`` when all did."""
    scores = Scores.of(scores)
    failed = scores.failed_candidates()
    if not failed:
        return "complete"
    return "failed" if len(failed) == len(scores.candidates) else "partial"
