"""The ``fewshot`` agent: a prompt with zero or k worked examples.

Examples are given as chat turns (user asks, assistant answers) before the real question, which instruct
models follow far better than examples pasted into one prompt. For classification the runner reads one of the
recipe's labels from the reply, from JSON first with ``output: json`` (:meth:`FewShotAgent.label_format`).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bakeoff.agents.base import Agent, AgentContext, AgentSettings
from bakeoff.agents.prompts import CLASSIFY_JSON_SYSTEM, CLASSIFY_SYSTEM, QA_SYSTEM
from bakeoff.core import Answer, Message, Query
from bakeoff.recipe.fields import ExistingFile

__all__ = ["Example", "FewShotAgent", "FewShotSettings"]


class Example(BaseModel):
    """One worked example: a question (or text to classify) and its answer (or label)."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(..., description="The example's question or text.")
    answer: str = Field(..., description="The example's answer or label.")


class FewShotSettings(AgentSettings):
    """A prompt-only candidate: zero-shot, or k examples before the question."""

    agent: Literal["fewshot"] = "fewshot"
    k: int = Field(
        0, ge=0, le=64, description="Number of examples shown before the question; 0 is zero-shot."
    )
    examples: ExistingFile | list[Example] | None = Field(
        None,
        description="Examples: a JSONL file (keys question/answer, or text/label, or instruction/output) or an "
        "inline list of {question, answer}.",
    )
    select: Literal["first", "random"] = Field(
        "first", description="Which k examples: the first k, or k drawn at random with `seed`."
    )
    seed: int = Field(0, description="Seed for `select: random`.")
    system: str | None = Field(
        None,
        description="System prompt. `{labels}` is replaced by the label list. Default: a short factual-answer "
        "instruction (QA) or a classify-into-labels instruction (classification).",
    )
    prompt: str = Field(
        "{question}",
        description="User message template; `{question}` is the question, `{labels}` the label list.",
    )
    output: Literal["text", "json"] = Field(
        "text", description='Classification only: `json` asks for {"label": ...} and parses it.'
    )

    @model_validator(mode="after")
    def _check(self) -> FewShotSettings:
        if self.k > 0 and self.examples is None:
            raise ValueError(f"k: {self.k} needs `examples:` (a JSONL file or an inline list)")
        if isinstance(self.examples, list) and self.k > len(self.examples):
            raise ValueError(f"k: {self.k} but only {len(self.examples)} inline examples")
        if "{question}" not in self.prompt:
            raise ValueError("`prompt` must contain {question}")
        return self


def _load_examples(source: Path | list[Example] | None) -> list[Example]:
    if source is None:
        return []
    if isinstance(source, list):
        return source
    from bakeoff.questions import load_questions

    return [Example(question=q.question, answer=q.reference) for q in load_questions(source, task="qa")]


class FewShotAgent(Agent):
    """Answers with a prompt and k examples; no training, no retrieval."""

    settings_model = FewShotSettings
    settings: FewShotSettings

    def __init__(self, settings: FewShotSettings, ctx: AgentContext) -> None:
        super().__init__(settings, ctx)
        self.examples: list[Example] | None = None  # the k examples shown, once prepared

    def prepare(self) -> None:
        """Read the examples file and choose the k examples shown."""
        if self.examples is not None:
            return
        settings = self.settings
        pool = _load_examples(settings.examples)
        if settings.k > len(pool):
            raise ValueError(
                f"candidate {settings.name!r}: k={settings.k} but only {len(pool)} examples available"
            )
        if settings.select == "random":
            pool = random.Random(settings.seed).sample(pool, settings.k)
        self.examples = pool[: settings.k]

    @property
    def _classify(self) -> bool:
        return self.ctx.task == "classification"

    def _fill(self, template: str, question: str = "") -> str:
        labels = ", ".join(self.ctx.labels)
        return template.replace("{labels}", labels).replace("{question}", question)

    def _system(self) -> str:
        if self.settings.system is not None:
            return self._fill(self.settings.system)
        if self._classify:
            return self._fill(CLASSIFY_JSON_SYSTEM if self.settings.output == "json" else CLASSIFY_SYSTEM)
        return QA_SYSTEM

    def _shown_answer(self, answer: str) -> str:
        if self._classify and self.settings.output == "json":
            return json.dumps({"label": answer})
        return answer

    def conversation(self, question: str) -> list[Message]:
        """The chat messages sent for one question."""
        self.prepare()
        messages = [{"role": "system", "content": self._system()}]
        for ex in self.examples or []:
            messages.append({"role": "user", "content": self._fill(self.settings.prompt, ex.question)})
            messages.append({"role": "assistant", "content": self._shown_answer(ex.answer)})
        messages.append({"role": "user", "content": self._fill(self.settings.prompt, question)})
        return messages

    def answer(self, questions: Sequence[Query]) -> list[Answer]:
        gen = self.generator()
        outs = gen.generate([self.conversation(q.question) for q in questions], self.settings.generation)
        return [Answer.from_generation(q.id, out) for q, out in zip(questions, outs, strict=True)]

    def label_format(self) -> Literal["text", "json"]:
        return self.settings.output

    def chat(self, messages: list[Message]) -> Iterator[str]:
        convo = self.conversation(messages[-1]["content"])[:-1] + messages
        yield from self.generator().stream(convo, self.settings.generation)

    def describe(self) -> dict[str, Any]:
        return {"k": self.settings.k, "system": self._system()}
