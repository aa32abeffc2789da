"""What every judge-graded metric shares: the cache, concurrent calls, and the failure rules.

The judged metrics are the RAGAS ones (:mod:`bakeoff.eval.ragas_metrics`) and ``judge_rubric``
(:mod:`bakeoff.eval.rubric`); the judge is the recipe's ``judge:`` (see :mod:`bakeoff.eval.judge`). Each answer
gets its own call, under a semaphore of the judge's ``concurrency``, and its own failure — one unusable reply
never sinks a batch. Failure rules, the same for every judged metric:

* not applicable (no retrieved contexts for a context metric) → missing, with that reason;
* the judge replied but the reply was unusable (not the JSON asked for, cut off, no statements found, a
  grade outside the scale) → missing with the reason, ``failure="parse"``, counted in the parse-failure rate
  — never a silent 0 or NaN in a mean;
* the judge could not be reached → missing, ``failure="judge"``, not cached.

Light at import (the registry imports it while validating recipes): asyncio is imported when the judge is
first asked.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from bakeoff.eval.metrics import Metric, MetricResult, Sample

__all__ = ["JudgedMetric", "ask_judge", "run_async"]

Ask = Callable[[Any, dict[str, Any]], Awaitable[MetricResult]]  # (client, inputs) -> verdict


def run_async(factory: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion from sync code, also when the caller is inside an event loop."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(factory())
    box: dict[str, Any] = {}

    def worker() -> None:
        try:
            box["value"] = asyncio.run(factory())
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


async def _gather(
    judge: Any, batch: Sequence[dict[str, Any]], ask: Ask, setup: Callable[[Any], None] | None
) -> list[MetricResult]:
    import asyncio

    client = judge.async_openai()
    try:
        if setup is not None:
            setup(client)
        gate = asyncio.Semaphore(judge.spec.concurrency)

        async def one(inputs: dict[str, Any]) -> MetricResult:
            async with gate:
                try:
                    return await ask(client, inputs)
                except Exception as exc:  # failures are data (see the module docstring)
                    return judge.failure(exc)

        return list(await asyncio.gather(*(one(inputs) for inputs in batch)))
    finally:
        await client.close()


def ask_judge(
    judge: Any,
    key: str,
    cache_keys: Sequence[dict[str, Any]],
    batch: Sequence[dict[str, Any]],
    ask: Ask,
    setup: Callable[[Any], None] | None = None,
) -> list[MetricResult]:
    """One verdict per input: from the judge cache where there is one, else asked (concurrently) and stored.

    Args:
        judge: the :class:`~bakeoff.eval.judge.Judge`.
        key: the cache's name for these verdicts (the metric's name).
        cache_keys: per input, what identifies its verdict (the inputs plus a version).
        batch: per input, what ``ask`` gets.
        ask: ``(client, inputs) -> MetricResult``; an exception becomes a ``failure="judge"`` result.
        setup: called with the client before the first call (builds per-event-loop objects).
    """
    results: list[MetricResult | None] = [judge.cached(key, k) for k in cache_keys]
    pending = [i for i, hit in enumerate(results) if hit is None]
    if pending:
        fresh = run_async(lambda: _gather(judge, [batch[i] for i in pending], ask, setup))
        for i, result in zip(pending, fresh, strict=True):
            judge.store(key, cache_keys[i], result)
            results[i] = result
    return [r for r in results if r is not None]


class JudgedMetric(Metric):
    """A metric whose values come from the judge, cached per (metric, inputs, judge)."""

    needs: ClassVar[tuple[str, ...]] = ("judge",)
    version: ClassVar[str] = "1"  # bump when prompts or inputs change, so old cached verdicts are not reused
    nan_reason: ClassVar[str] = "the judge's reply gave nothing to score (ragas returned NaN)"

    def __init__(self, judge: Any = None) -> None:
        self.judge = judge

    def score(self, *, response: str, reference: str) -> MetricResult:  # type: ignore[override]
        raise ValueError(f"{self.name} needs the question and context: use score_samples()")

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        """The inputs the judge sees (also the cache key), or a result that needs no judge."""
        raise NotImplementedError

    async def judge_one(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        """Ask the judge about one answer."""
        raise NotImplementedError

    def setup(self, client: Any) -> None:  # noqa: B027 - optional hook
        """Build per-event-loop objects (ragas metric instances) before the calls."""

    def _key_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"version": self.version, **inputs}

    async def _judge_checked(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        return self.check(await self.judge_one(client, inputs))

    def score_samples(self, samples: Sequence[Sample]) -> list[MetricResult]:
        if self.judge is None:
            raise ValueError(f"metric {self.name!r} needs a judge: add `judge:` to the recipe")
        results: list[MetricResult | None] = [None] * len(samples)
        asked: list[tuple[int, dict[str, Any]]] = []
        for i, sample in enumerate(samples):
            inputs = self.cache_inputs(sample)
            if isinstance(inputs, MetricResult):
                results[i] = inputs
            else:
                asked.append((i, inputs))
        verdicts = ask_judge(
            self.judge,
            self.name,
            [self._key_inputs(inputs) for _, inputs in asked],
            [inputs for _, inputs in asked],
            self._judge_checked,
            self.setup,
        )
        for (i, _), verdict in zip(asked, verdicts, strict=True):
            verdict.judged = True
            results[i] = verdict
        return [r for r in results if r is not None]

    def check(self, result: MetricResult) -> MetricResult:
        """Refuse NaN and out-of-range values (they become parse failures with the reason kept)."""
        value = result.value
        if value is None:
            return result
        if math.isnan(value):
            return MetricResult(None, self.nan_reason, failure="parse")
        low, high = self.score_range
        if not low - 1e-9 <= value <= high + 1e-9:
            return MetricResult(None, f"judge-derived value {value!r} outside {low}..{high}", failure="parse")
        return MetricResult(min(high, max(low, value)), result.reason)


def contexts_or_reason(sample: Sample, metric: str) -> list[str] | MetricResult:
    """The sample's non-empty retrieved contexts, or the missing result of a context metric without any."""
    contexts = [c for c in (sample.contexts or []) if c and c.strip()]
    if not contexts:
        return MetricResult(None, f"no retrieved contexts ({metric} applies to RAG candidates)")
    return contexts
