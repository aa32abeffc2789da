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


class SlowEchoAgent(EchoAgent):
    """Echo that takes a while per batch and counts its calls in a file (for kill-and-resume tests)."""

    def answer(self, questions):
        import os
        import time

        log = os.environ.get("TOY_CALL_LOG")
        if log:
            with open(log, "a") as fh:
                fh.write(",".join(q.id for q in questions) + "\n")
        time.sleep(float(os.environ.get("TOY_DELAY", "0.5")))
        return super().answer(questions)
