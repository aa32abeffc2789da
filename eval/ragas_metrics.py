"""The four RAGAS 0.4 metrics, graded by the recipe's judge: faithfulness, answer relevancy, context
precision and context recall.

They are the ``ragas.metrics.collections`` classes called with ``ascore`` — ragas' own ``evaluate()`` crashes
on them in 0.4.x, and ``abatch_score`` gathers without ``return_exceptions`` (one unparseable reply would sink
the batch), so each answer gets its own ``ascore`` through :func:`bakeoff.eval.judged.ask_judge`, with the
failure rules documented there. ragas is imported when a metric first scores.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

from bakeoff.eval.judged import JudgedMetric, contexts_or_reason
from bakeoff.eval.metrics import MetricResult, Sample

__all__ = ["AnswerRelevancy", "ContextPrecision", "ContextRecall", "Faithfulness"]


def _ragas_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ragas")
    except PackageNotFoundError:
        return "missing"


class _Ragas(JudgedMetric):
    """Shared plumbing: build the ragas metric on the judge's LLM, call ``ascore``."""

    task = "qa"
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
        from bakeoff.eval.ragas_replies import strict_replies

        self._metric = self.build(strict_replies(self.judge.ragas_llm(client)))

    async def judge_one(self, client: Any, inputs: dict[str, Any]) -> MetricResult:
        out = await self._metric.ascore(**inputs)
        return MetricResult(None if out.value is None else float(out.value), out.reason or "")


class Faithfulness(_Ragas):
    """RAGAS faithfulness: the share of the answer's statements that the retrieved contexts support."""

    name = "faithfulness"
    needs = ("judge", "contexts")
    ragas_class = "Faithfulness"
    version = "2"  # replies must hold at least one statement (bakeoff.eval.ragas_replies)
    description = "RAGAS: share of answer statements supported by the retrieved contexts (judge)"
    nan_reason = "the judge extracted no statements from the answer (ragas returned NaN)"

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        contexts = contexts_or_reason(sample, self.name)
        if isinstance(contexts, MetricResult):
            return contexts
        if not sample.response.strip():
            return MetricResult(None, "empty response: no statements to check")
        return {"user_input": sample.question, "response": sample.response, "retrieved_contexts": contexts}


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
    needs = ("judge", "embeddings")

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


class _ContextsVsReference(_Ragas):
    """RAGAS metrics that judge the retrieved contexts against the reference answer."""

    needs = ("judge", "contexts")

    def cache_inputs(self, sample: Sample) -> dict[str, Any] | MetricResult:
        contexts = contexts_or_reason(sample, self.name)
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
    version = "2"  # replies must classify at least one statement (bakeoff.eval.ragas_replies)
    description = "RAGAS: share of reference claims found in the retrieved contexts (judge)"
    nan_reason = "the judge classified no reference statements (ragas returned NaN)"
