"""Toy agents that prove the plugin contract (loaded via `module:Class` and via an entry point)."""

from typing import Literal

from pydantic import Field

from bakeoff.agents import Agent, AgentSettings, Answer, Retriever


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


class ScriptedSettings(AgentSettings):
    """Replies from a script, by question id (classification tests: the runner reads the labels)."""

    agent: Literal["scripted"] = "scripted"
    replies: dict[str, str] = Field(default_factory=dict, description="Question id -> reply text.")
    output: Literal["text", "json"] = Field("text", description="How the runner should read labels.")
    own_label: str | None = Field(None, description="Set this label on every answer itself.")


class ScriptedAgent(Agent):
    settings_model = ScriptedSettings

    def answer(self, questions):
        s = self.settings
        return [Answer(question_id=q.id, text=s.replies.get(q.id, ""), label=s.own_label) for q in questions]

    def label_format(self):
        return self.settings.output


class SpyAgent(EchoAgent):
    """Echo that keeps what it was given — its questions and its context — for contract tests."""

    seen: list = []  # shared on purpose: the test reads what the run's agent saw

    def answer(self, questions):
        SpyAgent.seen.append({"questions": list(questions), "ctx": self.ctx})
        return super().answer(questions)


class RetrieverSettings(AgentSettings):
    """Retrieves one fixed passage for every question."""

    agent: Literal["fixed-retriever"] = "fixed-retriever"
    passage: str = Field(..., description="The passage every question gets.")
    source: str = Field("doc.md", description="Its source file.")


class FixedRetrieverAgent(Agent, Retriever):
    settings_model = RetrieverSettings

    @property
    def retrieval_k(self) -> int:
        return 1

    def answer(self, questions):
        s = self.settings
        contexts = [{"text": s.passage, "source": s.source, "score": 1.0}]
        return [Answer(question_id=q.id, text=s.passage, contexts=contexts) for q in questions]


class UndeclaredRetrieverAgent(Agent):
    """Has a `retrieval_k` and contexts but does not declare `Retriever`: the runner must not guess."""

    settings_model = RetrieverSettings
    retrieval_k = 1

    answer = FixedRetrieverAgent.answer
