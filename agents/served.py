"""A served form of a fine-tuned candidate: its exported GGUF answering as a candidate of its own.

Not a recipe ``agent:`` kind — the runner makes one per form a fine-tune's ``serve:`` key lists
(:mod:`bakeoff.run.serve`), named ``NAME@FORM`` (llama.cpp in-process) or ``NAME@ollama-FORM`` (through the
recipe's Ollama server). It asks every question exactly as the training-time candidate does (the same system
prompt and conversation), with the same decoding settings, so any difference in the answers is the export's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, Literal

from bakeoff.agents.base import Agent, AgentContext
from bakeoff.agents.finetuned import FineTunedAgent
from bakeoff.core import Answer, Message, Query
from bakeoff.models.refs import ModelRef

__all__ = ["ServedAgent", "served_name"]

Engine = Literal["llama.cpp", "ollama"]


def served_name(candidate: str, form: str, engine: Engine) -> str:
    """The candidate name of a served form: ``lora@q8_0`` (llama.cpp) or ``lora@ollama-q8_0`` (Ollama)."""
    return f"{candidate}@{form}" if engine == "llama.cpp" else f"{candidate}@ollama-{form}"


class ServedAgent(Agent):
    """One served form (a GGUF file in llama.cpp, or the model registered from it in Ollama).

    Args:
        parent: the fine-tuned candidate it was exported from.
        form: ``f16``, ``q8_0`` or ``q4_k_m``.
        engine: what runs it.
        ref: the model reference that answers (``embedded-gguf:PATH`` or ``ollama:NAME``).
        facts: what the manifest records about it (export, cache hit, template sent).
        ctx: its view of the run.
    """

    def __init__(
        self,
        parent: FineTunedAgent,
        form: str,
        engine: Engine,
        ref: ModelRef,
        facts: dict[str, Any],
        ctx: AgentContext,
    ) -> None:
        name = served_name(parent.name, form, engine)
        # The parent's settings under the form's name: the same generation settings and system prompt.
        super().__init__(parent.settings.model_copy(update={"name": name}), ctx)
        self.parent = parent
        self.form = form
        self.engine = engine
        self.ref = ref
        self.facts = facts

    def generator(self):
        return self.ctx.generator_for(self.ref)

    def answer(self, questions: Sequence[Query]) -> list[Answer]:
        outs = self.generator().generate(
            [self.parent.conversation(q.question) for q in questions], self.settings.generation
        )
        return [Answer.from_generation(q.id, out) for q, out in zip(questions, outs, strict=True)]

    def chat(self, messages: list[Message]) -> Iterator[str]:
        head = self.parent.conversation("")[:-1]  # the system prompt, if any
        yield from self.generator().stream([*head, *messages], self.settings.generation)

    def describe(self) -> dict[str, Any]:
        return {"served": dict(self.facts)}
