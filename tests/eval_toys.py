"""Toys for evaluation tests: a retrieval oracle agent, scripted judge backends, synthetic runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from bakeoff.agents import Agent, AgentSettings, Answer
from bakeoff.models.local_server import Reply

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
    """Replies with a valid instance of whatever JSON schema it is asked for; counts its calls."""

    name = "agreeable-judge"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages, *, max_tokens, temperature, json_schema, json_mode) -> Reply:
        self.calls += 1
        text = json.dumps(_instance(json_schema, json_schema.get("$defs", {}))) if json_schema else "{}"
        return Reply(text=text, prompt_tokens=10, completion_tokens=10, finish_reason="stop")


class RamblingJudge:
    """Never answers in JSON."""

    name = "rambling-judge"

    def __init__(self) -> None:
        self.calls = 0

    def complete(self, messages, *, max_tokens, temperature, json_schema, json_mode) -> Reply:
        self.calls += 1
        return Reply(
            text="Well, it depends on many things.",
            prompt_tokens=10,
            completion_tokens=8,
            finish_reason="stop",
        )


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
