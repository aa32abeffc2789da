"""Judge accounting while scoring: per judged metric, how many answers were asked, cached, failed to parse or
met a judge error, the judge calls made, and the seconds spent (the ``judge`` block of ``scores.json``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bakeoff.eval.metrics import MetricResult
from bakeoff.run.documents.scores import JudgeAccounting, JudgeCounts, JudgeTotals

__all__ = ["JudgeTally"]


@dataclass
class JudgeTally:
    """Judge accounting as scoring goes: per metric totals and the seconds spent judging."""

    judge: Any
    totals: dict[str, JudgeTotals] = field(default_factory=dict)
    seconds: float = 0.0

    def calls(self) -> int:
        return self.judge.calls if self.judge is not None else 0

    def count(self, name: str, results: Sequence[MetricResult], calls_before: int, t0: float) -> JudgeCounts:
        """One candidate's counts for judged metric ``name`` (added to the run's totals)."""
        asked = [r for r in results if r.judged]
        parse = sum(1 for r in results if r.failure == "parse")
        counts = JudgeCounts(
            asked=len(asked),
            cache_hits=sum(1 for r in asked if r.cached),
            parse_failures=parse,
            judge_errors=sum(1 for r in results if r.failure == "judge"),
            parse_failure_rate=parse / len(asked) if asked else None,
            calls=self.judge.calls - calls_before,
        )
        total = self.totals.setdefault(
            name, JudgeTotals(asked=0, cache_hits=0, parse_failures=0, judge_errors=0, calls=0)
        )
        for key in ("asked", "cache_hits", "parse_failures", "judge_errors", "calls"):
            setattr(total, key, getattr(total, key) + getattr(counts, key))
        self.seconds += time.perf_counter() - t0
        return counts

    def accounting(self) -> JudgeAccounting:
        """The ``judge`` block: the judge's identity and calls, seconds, and the totals per metric."""
        for total in self.totals.values():
            total.parse_failure_rate = total.parse_failures / total.asked if total.asked else None
        return JudgeAccounting.model_validate(
            {**self.judge.describe(), "seconds": round(self.seconds, 2), "metrics": self.totals}
        )
