"""Recipe keys for evaluation: the judge (``judge:``) and the statistics (``eval.statistics:``).

Light on purpose (pydantic and :mod:`bakeoff.models.refs` only): the recipe schema imports it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bakeoff.models.refs import DEFAULT_MODEL, ModelRefField

__all__ = ["JudgeSpec", "RubricSpec", "StatisticsSpec"]


class RubricSpec(BaseModel):
    """The rubric the ``judge_rubric`` metric grades with."""

    model_config = ConfigDict(extra="forbid")

    criteria: str = Field(
        ...,
        min_length=1,
        description="What a good answer is, in plain words (for example: 'Correct and complete with respect "
        "to the reference; no invented facts').",
    )
    scale: tuple[int, int] = Field(
        (1, 5),
        description="Lowest and highest integer grade, e.g. [1, 5]; grades are normalised to 0-1 "
        "((grade - low) / (high - low)).",
    )
    pairwise: bool = Field(
        False,
        description="Also compare candidates two at a time on every question, asking in both orders (A/B "
        "then B/A); orders that disagree count as a tie. Verdicts go to scores.json `judge_pairwise`.",
    )

    @model_validator(mode="after")
    def _check_scale(self) -> RubricSpec:
        low, high = self.scale
        if high <= low:
            raise ValueError(f"scale needs low < high, got [{low}, {high}]")
        if high - low > 100:
            raise ValueError(f"scale [{low}, {high}] is too wide for a grading rubric (at most 100 steps)")
        return self


class JudgeSpec(BaseModel):
    """The LLM that grades answers for RAGAS metrics and `judge_rubric`.

    Write just a model reference (``judge: ollama:llama3.1:8b``) or a mapping with ``model:`` and settings.
    """

    model_config = ConfigDict(extra="forbid")

    model: ModelRefField = Field(
        ...,
        description=f"The judge model: `{DEFAULT_MODEL}` (served on a private local "
        "OpenAI-compatible endpoint), `hf:/path`, `ollama:MODEL` or `openai-compatible:URL#MODEL`.",
        json_schema_extra={"examples": ["ollama:llama3.1:8b", str(DEFAULT_MODEL)]},
    )
    max_new_tokens: int = Field(
        256,
        ge=16,
        le=8192,
        description="Most tokens per judge reply (RAGAS asks for JSON; too few truncates it).",
    )
    temperature: float = Field(
        0.0, ge=0.0, le=2.0, description="Judge sampling temperature; 0 (greedy) makes grades repeatable."
    )
    structured_output: Literal["json_schema", "json", "none"] = Field(
        "json_schema",
        description="How the judge is asked for JSON: `json_schema` (OpenAI structured outputs: vLLM, "
        "llama.cpp, Ollama ≥ 0.5 and the embedded judge constrain decoding to the schema), `json` "
        "(JSON mode, schema in the prompt) or `none` (prompt only).",
    )
    concurrency: int = Field(4, ge=1, le=64, description="Judge requests in flight at once.")
    timeout_s: float = Field(600.0, gt=0, description="Seconds to wait for one judge reply.")
    retries: int = Field(
        0,
        ge=0,
        le=5,
        description="Re-ask the judge when its reply does not fit the expected JSON (instructor retries); "
        "after that the value counts as missing with the reason kept.",
    )
    http_retries: int = Field(
        3,
        ge=0,
        le=10,
        description="Re-send a judge request that got HTTP 429 or 5xx, no connection or no reply in time, with "
        "exponential backoff (about 0.5, 1, 2 s; a server's Retry-After is honoured); then the value is missing.",
    )
    cache: bool = Field(
        True,
        description="Reuse judge verdicts stored under BAKEOFF_HOME/judge-cache (keyed by metric, inputs and "
        "judge settings), so re-scoring a run costs no judge calls.",
    )
    rubric: RubricSpec | None = Field(None, description="Rubric for the `judge_rubric` metric.")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        # `judge: ollama:llama3.1:8b` is the short form of `judge: {model: ollama:llama3.1:8b}`.
        return {"model": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check_model(self) -> JudgeSpec:
        from bakeoff.models.refs import kind_of, scheme_forms

        if not kind_of(self.model).can("judge"):
            raise ValueError(f"the judge cannot be {self.model}: name a model ({scheme_forms('judge')})")
        return self

    def identity(self) -> dict[str, Any]:
        """What makes two judges give the same verdicts (part of every judge-cache key)."""
        return {
            "model": str(self.model),
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "structured_output": self.structured_output,
        }


class StatisticsSpec(BaseModel):
    """How intervals and paired tests are computed."""

    model_config = ConfigDict(extra="forbid")

    resamples: int = Field(
        2000, ge=1000, le=100_000, description="Bootstrap resamples for every interval (at least 1,000)."
    )
    permutations: int = Field(
        10_000,
        ge=1000,
        le=1_000_000,
        description="Random sign flips for the paired permutation test (exact enumeration is used instead "
        "when a pair shares 16 questions or fewer).",
    )
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="Interval coverage, e.g. 0.95.")
    alpha: float = Field(
        0.05,
        gt=0.0,
        lt=0.5,
        description="A difference is marked significant when its Holm-corrected p < alpha.",
    )
    seed: int = Field(0, ge=0, description="Seed of every resampling, so a re-score gives identical numbers.")
