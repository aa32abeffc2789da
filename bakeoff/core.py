"""The records every layer passes: questions, the queries agents see, answers, generations, decoding settings and
chat messages.

This module is the leaf of the project: it imports nothing from bakeoff, so backends, agents, scoring, the
store and the console can all depend on it without depending on each other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Answer", "Generation", "GenerationSettings", "Message", "Query", "Question"]

Message = dict[str, str]
"""One chat turn: ``{"role": "system" | "user" | "assistant", "content": "..."}``."""


class GenerationSettings(BaseModel):
    """How a candidate's model generates text."""

    model_config = ConfigDict(extra="forbid")

    max_new_tokens: int = Field(96, ge=1, le=8192, description="Most tokens generated per answer.")
    temperature: float = Field(
        0.0,
        ge=0.0,
        le=2.0,
        description="0 means greedy decoding (deterministic, the default for evaluation).",
    )
    top_p: float = Field(
        1.0, gt=0.0, le=1.0, description="Nucleus sampling mass; used only when temperature > 0."
    )
    batch_size: int = Field(
        48,
        ge=1,
        le=512,
        description="Answers decoded together (rows of the batch, refilled as answers end); on a CPU, 48 rows "
        "answer about 2.5x faster than 16 at the same cost per step.",
    )
    seed: int = Field(0, description="Sampling seed (only matters when temperature > 0).")


@dataclass(frozen=True)
class Query:
    """A question as an agent sees it: its id and its text (for classification, the text to label).

    Never the reference, passage or source it is scored against — those stay with the runner's
    :class:`Question`.
    """

    id: str
    question: str


@dataclass
class Question:
    """One evaluation item. For classification, ``reference`` is the gold label.

    The runner keeps it for scoring; agents get its :attr:`query`.
    """

    id: str
    question: str
    reference: str
    passage: str | None = None
    source: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    """The line's other string fields (e.g. ``type``), for slicing scores (``eval.slice_by``)."""

    @property
    def query(self) -> Query:
        """What an agent is asked: the id and the text, without the reference."""
        return Query(self.id, self.question)


@dataclass
class Generation:
    """One generated reply."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0  # wall time of the batch divided by its size
    truncated: bool = False  # stopped by max_new_tokens, not by end of turn
    prompt_truncated: bool = False  # the prompt was cut (from the left) to fit the context window
    error: str | None = None

    @classmethod
    def from_chat_completion(cls, reply: Mapping[str, Any], latency_s: float) -> Generation:
        """The first choice of an OpenAI chat-completion reply (a dict, as llama.cpp and HTTP servers return it).

        Raises:
            KeyError, IndexError, TypeError: the reply is not shaped like a chat completion.
        """
        choice = reply["choices"][0]
        usage = reply.get("usage") or {}
        return cls(
            choice["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            latency_s=latency_s,
            truncated=choice.get("finish_reason") == "length",
        )


@dataclass
class Answer:
    """What a candidate said for one question; failures are data (``error``), never exceptions."""

    question_id: str
    text: str
    latency_s: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    label: str | None = None  # classification: the label parsed from text (None = unparseable)
    contexts: list[dict[str, Any]] = field(default_factory=list)  # RAG: [{text, source, score}]
    truncated: bool = False  # generation stopped at max_new_tokens
    prompt_truncated: bool = False  # the prompt was cut to fit the model's context window

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_generation(cls, question_id: str, out: Generation, **extra: Any) -> Answer:
        """The answer a :class:`Generation` makes, with agent-specific fields (``label``, ``contexts``) in
        ``extra``."""
        return cls(
            question_id=question_id,
            text=out.text,
            latency_s=out.latency_s,
            prompt_tokens=out.prompt_tokens,
            completion_tokens=out.completion_tokens,
            error=out.error,
            truncated=out.truncated,
            prompt_truncated=out.prompt_truncated,
            **extra,
        )
