"""Toy agents that prove the plugin contract (loaded via `module:Class` and via an entry point)."""

from typing import Literal

from pydantic import Field

from bakeoff.agents import Agent, AgentSettings, Answer


class EchoSettings(AgentSettings):
    """Answers with a fixed prefix and the question."""

    agent: Literal["echo"] = "echo"
    prefix: str = Field("", description="Put before the echoed question.")


class EchoAgent(Agent):
    settings_model = EchoSettings

    def answer(self, questions):
        return [
            Answer(
                question_id=q.id,
                text=self.settings.prefix + q.question,
                completion_tokens=len(q.question.split()),
            )
            for q in questions
        ]

    def chat(self, messages):
        yield self.settings.prefix + messages[-1]["content"]


class BrokenAgent(Agent):
    def answer(self, questions):
        raise RuntimeError("model server on fire")


class NotAnAgent:
    pass
