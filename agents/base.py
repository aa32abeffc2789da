"""The agent contract and the agent registry.

An agent turns a batch of questions into answers. Writing one takes a settings model (pydantic, one field per
recipe key, documented where declared) and a class with :meth:`Agent.answer`; :meth:`Agent.prepare`
(train, index) and :meth:`Agent.chat` are optional. Agents are found through the entry-point group
``bakeoff.agents`` — the built-ins are registered there exactly like third-party plugins — or named directly
in a recipe as ``agent: "package.module:ClassName"``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from functools import cache
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from bakeoff.core import Answer, GenerationSettings, Question
from bakeoff.errors import BakeoffError
from bakeoff.models.refs import ModelRefField

if TYPE_CHECKING:
    from bakeoff.run.context import RunContext

__all__ = [
    "Agent",
    "AgentError",
    "AgentSettings",
    "ENTRY_POINT_GROUP",
    "available_agents",
    "load_agent_class",
]

ENTRY_POINT_GROUP = "bakeoff.agents"


class AgentError(BakeoffError):
    """An agent cannot be found, imported or built; the message says what to do."""


class AgentSettings(BaseModel):
    """Settings every candidate has; each agent kind extends this with its own keys."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        ...,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+\-\[\]=]*$",
        max_length=80,
        description="Unique candidate name, used in tables, run files and `--only`.",
    )
    agent: str = Field(
        ..., description="Agent kind: a registered name (`fewshot`, ...) or `package.module:Class`."
    )
    description: str = Field("", description="One line shown beside the candidate in reports.")
    model: ModelRefField | None = Field(
        None,
        description="Model that answers; defaults to the recipe's `base_model`. `candidate:NAME` uses another "
        "candidate's model (for example RAG over a fine-tune).",
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings, description="Decoding settings."
    )
    sweep: dict[str, list[Any]] | None = Field(
        None,
        exclude=True,
        description="Expand this candidate into one per value (cartesian product for several keys), e.g. "
        "{learning_rate: [5e-5, 3e-5]} gives `NAME[lr=5e-5]` and `NAME[lr=3e-5]`. Keys are field names or dotted "
        "paths (train.lora.r). Expanded before validation.",
    )


class Agent(ABC):
    """Base class of every candidate agent.

    Subclasses set ``settings_model`` to their :class:`AgentSettings` subclass and implement :meth:`answer`.
    """

    settings_model: ClassVar[type[AgentSettings]] = AgentSettings

    def __init__(self, settings: AgentSettings, ctx: RunContext) -> None:
        self.settings = settings
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.settings.name

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Do slow one-time work (index a corpus, train an adapter) before answering."""

    @abstractmethod
    def answer(self, questions: Sequence[Question]) -> list[Answer]:
        """Answer a batch of questions, one :class:`Answer` per question, in order."""

    def chat(self, messages: list[dict[str, str]]) -> Iterator[str]:
        """Stream a reply to a chat history (``[{role, content}]``). Optional."""
        raise NotImplementedError(f"agent {type(self).__name__} does not support chat")

    @property
    def retrieval_k(self) -> int | None:
        """Passages retrieved per question, or None for a candidate that does not retrieve.

        A retrieving candidate records them as ``contexts`` on its answers; scoring then reports
        ``hit_rate@k`` and ``mrr`` for it when the questions name a supporting passage or source.
        """
        return None

    def generator(self):
        """The model this candidate answers with (what ``candidate:NAME`` references resolve to)."""
        return self.ctx.generator_for(self.settings.model)

    def describe(self) -> dict[str, Any]:
        """Facts about this candidate for the manifest (model, training summary, ...)."""
        return {}


@cache
def available_agents() -> dict[str, Any]:
    """Registered agent kinds: name -> entry point (not yet imported)."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _check_agent_class(obj: Any, where: str) -> type[Agent]:
    if not (isinstance(obj, type) and issubclass(obj, Agent)):
        raise AgentError(f"{where} is not a subclass of bakeoff.agents.Agent")
    if not (isinstance(obj.settings_model, type) and issubclass(obj.settings_model, AgentSettings)):
        raise AgentError(f"{where}.settings_model must subclass bakeoff.agents.AgentSettings")
    return obj


@cache
def load_agent_class(kind: str) -> type[Agent]:
    """Import the agent class for ``kind`` (a registered name or ``module:Class``).

    Raises:
        AgentError: unknown name, import failure (with what to install), or not an Agent subclass.
    """
    if ":" in kind:
        module_name, _, class_name = kind.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            missing = getattr(exc, "name", None) or module_name
            raise AgentError(
                f"cannot import {module_name!r} for agent {kind!r}: {exc}. "
                f"Install the package that provides {missing!r} (pip install ...) or fix the module path."
            ) from None
        try:
            obj = getattr(module, class_name)
        except AttributeError:
            raise AgentError(f"module {module_name!r} has no class {class_name!r} (agent {kind!r})") from None
        return _check_agent_class(obj, kind)
    registry = available_agents()
    if kind not in registry:
        known = ", ".join(sorted(registry)) or "none"
        raise AgentError(
            f"unknown agent {kind!r}; registered agents: {known}; or write 'package.module:Class'"
        )
    try:
        obj = registry[kind].load()
    except ImportError as exc:
        raise AgentError(f"agent {kind!r} ({registry[kind].value}) failed to import: {exc}") from None
    return _check_agent_class(obj, f"agent {kind!r}")
