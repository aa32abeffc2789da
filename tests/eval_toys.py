"""Toys for evaluation tests: a retrieval oracle agent, scripted judge models, synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bakeoff.agents import Agent, AgentSettings, Answer
from bakeoff.core import Generation

CONTRACT = Path(__file__).resolve().parent.parent / "data" / "contract-qa.jsonl"


class PassageSettings(AgentSettings):
    """Answers with the supporting passage's words: a stand-in for a RAG candidate that retrieves perfectly.

    An agent never sees the gold data, so this oracle reads it itself, from the evaluation file `oracle`.
    """

    agent: Literal["passage"] = "passage"
    oracle: Path = Field(
        ..., description="The evaluation set whose passages (else references) it answers with."
    )
    words: int = Field(20, description="Words of the passage used as the answer.")


class PassageAgent(Agent):
    settings_model = PassageSettings

    def prepare(self):
        from bakeoff.questions import load_questions

        self.gold = {q.id: q for q in load_questions(self.settings.oracle, task="qa")}

    def answer(self, questions):
        out = []
        for q in questions:
            gold = self.gold[q.id]
            passage = gold.passage or gold.reference
            out.append(
                Answer(
                    question_id=q.id,
                    text=" ".join(passage.split()[: self.settings.words]),
                    contexts=[{"text": passage, "source": gold.source or "", "score": 0.9}],
                )
            )
        return out


def _instance(schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A small valid instance of a JSON schema (what an agreeable judge would say)."""
    if "$ref" in schema:
        return _instance(defs[schema["$ref"].split("/")[-1]], defs)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _instance(schema[key][0], defs)
    if "enum" in schema:
        return schema["enum"][-1]
    kind = schema.get("type")
    if kind == "object":
        return {k: _instance(v, defs) for k, v in schema.get("properties", {}).items()}
    if kind == "array":
        return [_instance(schema.get("items", {"type": "string"}), defs)]
    if kind == "integer":
        return 1
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    return "The answer is supported."


class AgreeableJudge:
    """A generator with the JSON capability: replies with a valid instance of whatever JSON schema it is asked
    for (``{}`` when none); counts its calls."""

    name = "agreeable-judge"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, conversations, settings, progress=None) -> list[Generation]:
        self.calls += len(conversations)
        return [Generation("{}", prompt_tokens=10, completion_tokens=10) for _ in conversations]

    def generate_json(self, conversation, settings, schema) -> Generation:
        self.calls += 1
        text = json.dumps(_instance(schema, schema.get("$defs", {}))) if schema else "{}"
        return Generation(text, prompt_tokens=10, completion_tokens=10)

    def stream(self, conversation, settings):
        yield "{}"


class RamblingJudge:
    """A generator that never answers in JSON (and has no JSON capability)."""

    name = "rambling-judge"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, conversations, settings, progress=None) -> list[Generation]:
        self.calls += len(conversations)
        return [
            Generation("Well, it depends on many things.", prompt_tokens=10, completion_tokens=8)
            for _ in conversations
        ]

    def stream(self, conversation, settings):
        yield "Well, it depends on many things."


def write_run(
    tmp_path: Path, scores: dict[str, Any], answers: dict[str, list[dict[str, Any]]], name: str = "toy"
) -> Path:
    """A complete run folder holding ``answers`` and ``scores``."""
    from bakeoff.run.store import RunWriter

    writer = RunWriter.create(tmp_path / "runs", name, f"name: {name}\n", task=scores.get("task", "qa"))
    for cand, rows in answers.items():
        writer.append_answers(cand, rows)
        writer.manifest["candidates"][cand] = {"agent": "toy", "model": "none", "answer_s": 0.1, "errors": 0}
    writer.write_scores(scores)
    writer.finish("complete")
    return writer.path
