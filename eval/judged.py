"""Metrics graded by a judge LLM: the four RAGAS 0.4 metrics and ``judge_rubric``.

RAGAS metrics are the ``ragas.metrics.collections`` classes called with ``ascore`` — ragas' own
``evaluate()`` crashes on them in 0.4.x, and ``abatch_score`` gathers without ``return_exceptions`` (one
unparseable reply would sink the batch), so each answer gets its own ``ascore`` under a semaphore and its
own failure. The judge is the recipe's ``judge:`` (see :mod:`bakeoff.eval.judge`).

Failure rules, the same for every judged metric:

* not applicable (no retrieved contexts for a context metric) → missing, with that reason;
* the judge replied but the reply was unusable (not the JSON asked for, cut off, no statements found, a
  grade outside the scale) → missing with the reason, ``failure="parse"``, counted in the parse-failure rate
  — never a silent 0 or NaN in a mean;
* the judge could not be reached → missing, ``failure="judge"``, not cached.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from itertools import combinations
from typing import Any, ClassVar

from bakeoff.eval.metrics import Metric, MetricResult, Sample

__all__ = [
    "AnswerRelevancy",
    "ContextPrecision",
    "ContextRecall",
    "Faithfulness",
    "JudgeRubric",
    "JudgedMetric",
    "parse_grade",
    "parse_winner",
]


def run_async(factory: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine to completion from sync code, also when the caller is inside an event loop."""
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


class JudgedMetric(Metric):
    """A metric whose values come from the judge, cached per (metric, inputs, judge)."""

    needs: ClassVar[tuple[str, ...]] = ("judge",)
    version: ClassVar[str] = "1"  # bump when prompts or inputs change, so old cached verdicts are not reused

    def __init__(self, judge: Any = None) -> None:
        self.judge = judge

    def score(self, *, response: str, reference: str) -> MetricResult:
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

    def score_samples(self, samples: Sequence[Sample]) -> list[MetricResult]:
        if self.judge is None:
            raise ValueError(f"metric {self.name!r} needs a judge: add `judge:` to the recipe")
        results: list[MetricResult | None] = [None] * len(samples)
        pending: list[tuple[int, dict[str, Any]]] = []
        for i, sample in enumerate(samples):
            inputs = self.cache_inputs(sample)
            if isinstance(inputs, MetricResult):
                results[i] = inputs
                continue
            hit = self.judge.cached(self.name, self._key_inputs(inputs))
            if hit is not None:
                hit.judged = True
                results[i] = hit
            else:
                pending.append((i, inputs))
        if pending:
            fresh = run_async(lambda: self._judge_all([inputs for _, inputs in pending]))
            for (i, inputs), result in zip(pending, fresh, strict=True):
                self.judge.store(self.name, self._key_inputs(inputs), result)
                result.judged = True
                results[i] = result
        return [r for r in results if r is not None]

    async def _judge_all(self, batch: list[dict[str, Any]]) -> list[MetricResult]:
        client = self.judge.async_openai()
        gate = asyncio.Semaphore(self.judge.spec.concurrency)
        self.setup(client)

        async def one(inputs: dict[str, Any]) -> MetricResult:
            async with gate:
                try:
                    return self.check(await self.judge_one(client, inputs))
                except Exception as exc:  # failures are data (see the module docstring)
                    return self.judge.failure(exc)

        try:
            return list(await asyncio.gather(*(one(inputs) for inputs in batch)))
        finally:
            await client.close()

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

    nan_reason: ClassVar[str] = "the judge's reply gave nothing to score (ragas returned NaN)"


# -- RAGAS ---------------------------------------------------------------------------------------------------


def _ragas_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragas")
    except PackageNotFoundError:
        return "missing"


class _Ragas(JudgedMetric):
    """Shared plumbing: build the ragas metric on the judge's LLM, call ``ascore``."""

    ragas_class: ClassVar[str]

    def _key_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"version": f"{self.version}/ragas-{_ragas_version()}", **inputs}

    def build(self, llm: Any):
        from ragas.metrics import collections

        return getattr(collections, self.ragas_class)(llm=llm)

    def setup(self, client: Any) -> None:
        try:
            import ragas  # noqa: F401
        except ImportError:
            raise ImportError("RAGAS metrics need ragas: pip install 'ragas==0.4.3'") from None
        self._metric = self.build(self.judge.ragas_llm(client))

    async def judge_one(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        out = await self._metric.ascore(**inputs)
        return MetricResult(None if out.value is None else float(out.value), out.reason or "")


def _contexts_or_reason(sample: Sample, metric: str) -> list[str] | MetricResult:
    contexts = [c for c in (sample.contexts or []) if c and c.strip()]
    if not contexts:
        return MetricResult(None, f"no retrieved contexts ({metric} applies to RAG candidates)")
    return contexts


class Faithfulness(_Ragas):
    """RAGAS faithfulness: the share of the answer's statements that the retrieved contexts support."""

    name = "faithfulness"
    ragas_class = "Faithfulness"
    description = "RAGAS: share of answer statements supported by the retrieved contexts (judge)"
    nan_reason = "the judge extracted no statements from the answer (ragas returned NaN)"

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        contexts = _contexts_or_reason(sample, self.name)
        if isinstance(contexts, MetricResult):
            return contexts
        if not sample.response.strip():
            return MetricResult(None, "empty response: no statements to check")
        return {"user_input": sample.question, "response": sample.response, "retrieved_contexts": contexts}


class _ContextsVsReference(_Ragas):
    """RAGAS metrics that judge the retrieved contexts against the reference answer."""

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        contexts = _contexts_or_reason(sample, self.name)
        if isinstance(contexts, MetricResult):
            return contexts
        return {"user_input": sample.question, "reference": sample.reference, "retrieved_contexts": contexts}


class ContextPrecision(_ContextsVsReference):
    """RAGAS context precision: are the contexts useful for the reference answer ranked first?"""

    name = "context_precision"
    ragas_class = "ContextPrecision"
    description = "RAGAS: useful retrieved contexts ranked first, vs the reference (judge)"


class ContextRecall(_ContextsVsReference):
    """RAGAS context recall: the share of the reference's claims found in the retrieved contexts."""

    name = "context_recall"
    ragas_class = "ContextRecall"
    description = "RAGAS: share of reference claims found in the retrieved contexts (judge)"
    nan_reason = "the judge classified no reference statements (ragas returned NaN)"


class _RagasEmbeddings:
    """bakeoff's embedder as a ragas ``BaseRagasEmbedding`` (built lazily: ragas is imported on use)."""

    @staticmethod
    def build(ref: Any, ollama_host: str | None = None):
        from ragas.embeddings.base import BaseRagasEmbedding

        from bakeoff.models.embeddings import load_embedder

        embedder = load_embedder(ref, ollama_host)

        class Adapter(BaseRagasEmbedding):
            def embed_text(self, text: str, **kwargs: Any) -> list[float]:
                return embedder.embed([text])[0]

            async def aembed_text(self, text: str, **kwargs: Any) -> list[float]:
                return embedder.embed([text])[0]

            def embed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
                return embedder.embed(list(texts))

            async def aembed_texts(self, texts: list[str], **kwargs: Any) -> list[list[float]]:
                return embedder.embed(list(texts))

        return Adapter()


class AnswerRelevancy(_Ragas):
    """RAGAS answer relevancy: the judge writes the question the answer seems to address; its embedding is
    compared with the real question's (the recipe's ``embeddings:`` model).

    ragas asks ``strictness`` times; a greedy judge (temperature 0) would write the same question each time,
    so it is asked once. A negative cosine (an unrelated question) counts as 0.
    """

    name = "answer_relevancy"
    ragas_class = "AnswerRelevancy"
    description = "RAGAS: does the answer address the question (judge + embeddings)"
    needs = ("judge", "embeddings", "ollama_host")

    def __init__(self, judge: Any = None, embeddings: Any = None, ollama_host: str | None = None) -> None:
        super().__init__(judge)
        from bakeoff.models.refs import DEFAULT_EMBEDDINGS

        self.embeddings_ref = embeddings or DEFAULT_EMBEDDINGS
        self.ollama_host = ollama_host

    @property
    def strictness(self) -> int:
        return 1 if self.judge is None or self.judge.spec.temperature == 0 else 3

    def _key_inputs(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {**super()._key_inputs(inputs), "embeddings": str(self.embeddings_ref), "n": self.strictness}

    def build(self, llm: Any):
        from ragas.metrics.collections import AnswerRelevancy as RagasAnswerRelevancy

        embeddings = _RagasEmbeddings.build(self.embeddings_ref, self.ollama_host)
        return RagasAnswerRelevancy(llm=llm, embeddings=embeddings, strictness=self.strictness)

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        if not sample.response.strip():
            return MetricResult(0.0, "empty response")
        return {"user_input": sample.question, "response": sample.response}

    def check(self, result: MetricResult) -> MetricResult:
        if result.value is not None and not math.isnan(result.value) and result.value < 0:
            result = MetricResult(0.0, "negative cosine: the judge's question is unrelated")
        return super().check(result)


# -- rubric judge --------------------------------------------------------------------------------------------

_GRADE_SYSTEM = (
    "You are a strict, fair grader. You grade one answer to a question using the rubric and the reference "
    "answer. Reply with JSON only."
)
_GRADE_USER = """Rubric: {criteria}
Grades: integers from {low} (worst) to {high} (best).

Question: {question}
Reference answer: {reference}
Answer to grade: {response}

Reply with JSON only: {{"score": <integer {low}-{high}>, "reason": "<one short sentence>"}}"""

_PAIR_SYSTEM = (
    "You are a strict, fair judge. You compare two answers to the same question using the rubric and the "
    "reference answer. Reply with JSON only."
)
_PAIR_USER = """Rubric: {criteria}

Question: {question}
Reference answer: {reference}

Answer A: {first}

Answer B: {second}

Which answer is better by the rubric? Reply with JSON only: {{"winner": "A" or "B" or "tie", "reason": "<one short sentence>"}}"""


def _json_object(text: str) -> dict[str, Any] | None:
    text = text.strip()
    fenced = re.search(r"\{.*\}", text, flags=re.S)
    for candidate in (text, fenced.group(0) if fenced else None):
        if not candidate:
            continue
        try:
            obj = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(obj, dict):
            return obj
    return None


def _snippet(text: str) -> str:
    one = " ".join(text.split())
    return one[:120] + ("…" if len(one) > 120 else "")


def parse_grade(text: str, low: int, high: int) -> tuple[int | None, str]:
    """The integer grade in a judge reply, or ``None`` and why not."""
    obj = _json_object(text)
    raw: Any = obj.get("score") if obj is not None else None
    if raw is None:
        found = re.search(r"score\W{0,4}(-?\d+)", text, flags=re.I) or re.fullmatch(r"\s*(-?\d+)\s*", text)
        raw = found.group(1) if found else None
    if raw is None:
        return None, f"no grade in judge reply: {_snippet(text)!r}"
    try:
        grade = int(raw) if not isinstance(raw, float) or raw.is_integer() else None
    except (TypeError, ValueError):
        grade = None
    if grade is None:
        return None, f"grade {raw!r} is not an integer"
    if not low <= grade <= high:
        return None, f"grade {grade} outside the {low}-{high} scale"
    reason = obj.get("reason", "") if obj else ""
    return grade, str(reason)[:300] if isinstance(reason, str) else ""


def parse_winner(text: str) -> tuple[str | None, str]:
    """``"A"``, ``"B"`` or ``"tie"`` from a pairwise judge reply, or ``None`` and why not."""
    obj = _json_object(text)
    raw: Any = obj.get("winner") if obj is not None else None
    if raw is None:
        found = re.search(r"winner\W{0,4}(A|B|tie)\b", text, flags=re.I)
        raw = found.group(1) if found else None
    if isinstance(raw, str) and raw.strip().lower() in ("a", "b", "tie"):
        value = raw.strip().lower()
        return ("tie" if value == "tie" else value.upper()), ""
    return None, f"no winner (A, B or tie) in judge reply: {_snippet(text)!r}"


class JudgeRubric(JudgedMetric):
    """The judge grades each answer on the recipe's rubric and integer scale, normalised to [0, 1].

    With ``rubric.pairwise``, :meth:`pairwise` also compares candidates two at a time, asking in both orders
    (position bias is real in small and large judges alike); orders that disagree make a tie.
    """

    name = "judge_rubric"
    description = "LLM judge grade on the recipe's rubric and scale, normalised 0-1"

    @property
    def rubric(self):
        rubric = self.judge.spec.rubric if self.judge is not None else None
        if rubric is None:
            raise ValueError("judge_rubric needs `judge.rubric` (criteria and scale) in the recipe")
        return rubric

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        if not sample.response.strip():
            return MetricResult(0.0, "empty response: lowest grade")
        low, high = self.rubric.scale
        return {
            "criteria": self.rubric.criteria,
            "scale": [low, high],
            "question": sample.question,
            "reference": sample.reference,
            "response": sample.response,
        }

    async def _ask(self, client: Any, system: str, user: str, schema: dict[str, Any], name: str) -> str:
        kwargs: dict[str, Any] = {}
        fmt = self.judge.response_format(schema, name)
        if fmt is not None:
            kwargs["response_format"] = fmt
        reply = await client.chat.completions.create(
            model=self.judge.model_name,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": user}],
            max_tokens=self.judge.spec.max_new_tokens,
            temperature=self.judge.spec.temperature,
            **kwargs,
        )
        return reply.choices[0].message.content or ""

    async def judge_one(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        low, high = inputs["scale"]
        schema = {
            "type": "object",
            "properties": {
                "score": {"type": "integer", "enum": list(range(low, high + 1))},
                "reason": {"type": "string"},
            },
            "required": ["score", "reason"],
        }
        text = await self._ask(
            client,
            _GRADE_SYSTEM,
            _GRADE_USER.format(low=low, high=high, **{k: v for k, v in inputs.items() if k != "scale"}),
            schema,
            "grade",
        )
        grade, reason = parse_grade(text, low, high)
        if grade is None:
            return MetricResult(None, reason, failure="parse")
        return MetricResult((grade - low) / (high - low), reason)

    # -- pairwise ---------------------------------------------------------------------------------------------
    async def _verdict(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        schema = {
            "type": "object",
            "properties": {
                "winner": {"type": "string", "enum": ["A", "B", "tie"]},
                "reason": {"type": "string"},
            },
            "required": ["winner", "reason"],
        }
        text = await self._ask(client, _PAIR_SYSTEM, _PAIR_USER.format(**inputs), schema, "verdict")
        winner, why = parse_winner(text)
        if winner is None:
            return MetricResult(None, why, failure="parse")
        return MetricResult({"A": 1.0, "B": 0.0, "tie": 0.5}[winner], text.strip()[:300])

    def pairwise(self, samples: dict[str, dict[str, Sample]]) -> dict[str, Any]:
        """Judge every pair of candidates on every shared question, in both orders.

        Args:
            samples: candidate -> question id -> sample.

        Returns:
            The ``judge_pairwise`` block of scores.json: ``comparisons`` is a list of
            ``[candidate_a, candidate_b, outcome]`` (1.0 = a wins, 0.0 = b wins, 0.5 = tie), one per question
            and pair with a usable verdict, ready for a Bradley–Terry fit; ``per_question`` has both orders'
            verdicts; ``summary`` counts wins per pair; missing verdicts keep their reasons.
        """
        jobs: list[tuple[str, str, str, int, dict[str, Any]]] = []  # (a, b, qid, order, inputs)
        for a, b in combinations(list(samples), 2):
            for qid, sa in samples[a].items():
                sb = samples[b].get(qid)
                if sb is None:
                    continue
                base = {"criteria": self.rubric.criteria, "question": sa.question, "reference": sa.reference}
                jobs.append((a, b, qid, 0, {**base, "first": sa.response, "second": sb.response}))
                jobs.append((a, b, qid, 1, {**base, "first": sb.response, "second": sa.response}))
        key = "judge_rubric_pairwise"
        results: list[MetricResult | None] = [None] * len(jobs)
        pending = []
        for i, (*_, inputs) in enumerate(jobs):
            hit = self.judge.cached(key, {"version": self.version, **inputs})
            if hit is not None:
                results[i] = hit
            else:
                pending.append(i)
        if pending:

            async def run_all() -> list[MetricResult]:
                client = self.judge.async_openai()
                gate = asyncio.Semaphore(self.judge.spec.concurrency)

                async def one(inputs: dict[str, Any]) -> MetricResult:
                    async with gate:
                        try:
                            return await self._verdict(client, inputs)
                        except Exception as exc:
                            return self.judge.failure(exc)

                try:
                    return list(await asyncio.gather(*(one(jobs[i][4]) for i in pending)))
                finally:
                    await client.close()

            for i, result in zip(pending, run_async(run_all), strict=True):
                self.judge.store(key, {"version": self.version, **jobs[i][4]}, result)
                results[i] = result
        return self._collect(jobs, results)

    @staticmethod
    def _collect(jobs, results) -> dict[str, Any]:
        by_pair_q: dict[tuple[str, str, str], list[MetricResult | None]] = {}
        for (a, b, qid, order, _), result in zip(jobs, results, strict=True):
            by_pair_q.setdefault((a, b, qid), [None, None])[order] = result
        comparisons: list[list[Any]] = []
        per_question: list[dict[str, Any]] = []
        summary: dict[str, dict[str, int]] = {}
        missing: dict[str, int] = {}
        asked = parse_failures = judge_errors = cache_hits = 0
        for (a, b, qid), (first, second) in by_pair_q.items():
            counts = summary.setdefault(
                f"{a} vs {b}", {"a_wins": 0, "b_wins": 0, "ties": 0, "order_disagreements": 0, "missing": 0}
            )
            for r in (first, second):
                asked += 1
                cache_hits += int(bool(r and r.cached))
                parse_failures += int(bool(r and r.failure == "parse"))
                judge_errors += int(bool(r and r.failure == "judge"))
            if first is None or second is None or first.value is None or second.value is None:
                bad = next(r for r in (first, second) if r is None or r.value is None)
                reason = bad.reason if bad is not None else "no verdict"
                missing[reason] = missing.get(reason, 0) + 1
                counts["missing"] += 1
                per_question.append({"question_id": qid, "a": a, "b": b, "outcome": None, "reason": reason})
                continue
            # first order shows a as "A"; second shows b as "A", so flip it back to a's view.
            v1, v2 = first.value, 1.0 - second.value
            outcome = v1 if v1 == v2 else 0.5  # the orders disagree: position bias, call it a tie
            comparisons.append([a, b, outcome])
            counts["a_wins" if outcome == 1.0 else "b_wins" if outcome == 0.0 else "ties"] += 1
            counts["order_disagreements"] += int(v1 != v2)
            per_question.append(
                {
                    "question_id": qid,
                    "a": a,
                    "b": b,
                    "outcome": outcome,
                    "orders": [v1, v2],
                    "consistent": v1 == v2,
                }
            )
        return {
            "metric": "judge_rubric",
            "outcome_scale": "1.0 = a wins, 0.0 = b wins, 0.5 = tie (also when the two orders disagree)",
            "comparisons": comparisons,
            "per_question": per_question,
            "summary": summary,
            "asked": asked,
            "cache_hits": cache_hits,
            "parse_failures": parse_failures,
            "judge_errors": judge_errors,
            "parse_failure_rate": parse_failures / asked if asked else None,
            **({"missing_reasons": missing} if missing else {}),
        }
