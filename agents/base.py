"""The agent contract and the agent registry.

An agent turns a batch of questions into answers. Writing one takes a settings model (pydantic, one field per
recipe key, documented where declared) and a class with :meth:`Agent.answer`; :meth:`Agent.prepare`
(train, index), :meth:`Agent.chat` and :meth:`Agent.describe` are optional. An agent sees its run only through
:class:`AgentContext` and its questions only as :class:`~bakeoff.core.Query` (id and text, never the reference).
What the runner does beyond answering is asked for with optional capabilities: :class:`Retriever` (scored on
its retrieved passages), :class:`Registrable` (registered in Ollama after preparation) and :class:`Servable`
(its exported GGUF forms evaluated as candidates of their own).

Agents are found through the entry-point group ``bakeoff.agents`` — the built-ins are registered there exactly
like third-party plugins — or named directly in a recipe as ``agent: "package.module:ClassName"``.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bakeoff.core import Answer, GenerationSettings, Message, Query
from bakeoff.errors import BakeoffError
from bakeoff.models.refs import ModelRef, ModelRefField

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.models.generators import Generator
    from bakeoff.rag.vectorstore import VectorStore
    from bakeoff.serving.settings import OllamaRegistration, ServedForms
    from bakeoff.synth.jobs import SynthesizedRef

__all__ = [
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentSettings",
    "Corpus",
    "ENTRY_POINT_GROUP",
    "Registrable",
    "Retriever",
    "Servable",
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


class Corpus(Protocol):
    """The recipe's corpus as an agent uses it (:attr:`AgentContext.corpus`; None when the recipe has none)."""

    @property
    def embeddings(self) -> ModelRef | None:
        """The recipe's embedding model (None: the default, all-MiniLM-L6-v2)."""
        ...

    def index(self) -> VectorStore:
        """The run's vector store: synced with the corpus on first use (only new or changed chunks are
        embedded) and shared by every candidate of the run; what indexing found goes to the manifest."""
        ...

    def chunk_texts(self) -> list[str]:
        """The text of every corpus chunk, in corpus order (e.g. to train on); skipped files are printed."""
        ...


class AgentContext(Protocol):
    """What an agent sees of its run. The runner builds one per candidate; an agent keeps it as ``self.ctx``.

    Outside a run (``bakeoff chat``, the console's chat page) ``run_dir`` and ``folder`` are None and
    ``may_train`` is False where the caller must not train.
    """

    @property
    def task(self) -> Literal["qa", "classification"]:
        """What the recipe evaluates."""
        ...

    @property
    def labels(self) -> Sequence[str]:
        """The label set of a classification recipe (empty for ``qa``)."""
        ...

    @property
    def console(self) -> Console:
        """Where the agent prints progress (a rich console)."""
        ...

    @property
    def base_model(self) -> ModelRef:
        """The recipe's ``base_model`` (what a candidate without ``model:`` uses)."""
        ...

    @property
    def run_dir(self) -> Path | None:
        """The run folder being written, or None outside a run."""
        ...

    @property
    def folder(self) -> Path | None:
        """This candidate's own folder, ``<run>/training/<name>/`` (curves, weights), or None outside a run.
        Not created until the agent writes to it."""
        ...

    @property
    def corpus(self) -> Corpus | None:
        """The recipe's corpus, or None when it has no ``corpus:`` block."""
        ...

    @property
    def retrain(self) -> bool:
        """``bakeoff run --retrain``: train again even when the training cache has the weights."""
        ...

    @property
    def may_train(self) -> bool:
        """False where training is not allowed (the console only loads weights a run trained)."""
        ...

    def generator_for(self, ref: ModelRef | None) -> Generator:
        """The model for a reference: None is the base model, ``candidate:NAME`` another candidate's model
        (for example the trained model of a fine-tune); loaded once per run and shared."""
        ...

    def note(self, message: str) -> None:
        """Record a fact for the run manifest's ``notes`` and show it."""
        ...

    def data_path(self, value: Path | SynthesizedRef) -> Path:
        """A data-file setting as a path: a file as it is, ``synthesized:JOB`` as the job's output.

        Raises:
            DataError: the job does not exist or has not written its output yet.
        """
        ...


class Agent(ABC):
    """Base class of every candidate agent.

    Subclasses set ``settings_model`` to their :class:`AgentSettings` subclass and implement :meth:`answer`.
    ``__init__`` only keeps its arguments (and checks them); slow work belongs in :meth:`prepare`.
    """

    settings_model: ClassVar[type[AgentSettings]] = AgentSettings

    def __init__(self, settings: AgentSettings, ctx: AgentContext) -> None:
        self.settings = settings
        self.ctx = ctx

    @property
    def name(self) -> str:
        return self.settings.name

    def prepare(self) -> None:  # noqa: B027 - optional hook
        """Do slow one-time work (load examples, index a corpus, train an adapter) before answering.

        The runner calls it once per candidate, in dependency order, before any candidate answers; an
        exception here fails the run. Make it safe to call again (``bakeoff chat`` and the console call it too).
        """

    @abstractmethod
    def answer(self, questions: Sequence[Query]) -> list[Answer]:
        """Answer a batch of questions, one :class:`Answer` per question, in order.

        A failure of one question is that answer's ``error``; an exception becomes the ``error`` of every
        answer of the batch. In a classification recipe, leave ``label`` None to have the runner read it from
        ``text`` (see :meth:`label_format`), or set it yourself.
        """

    def chat(self, messages: list[Message]) -> Iterator[str]:
        """Stream a reply to a chat history (``[{role, content}]``). Optional."""
        raise NotImplementedError(f"agent {type(self).__name__} does not support chat")

    def label_format(self) -> Literal["text", "json"]:
        """Classification: how the runner reads a label from this agent's replies. ``"text"``: the earliest
        label word; ``"json"``: a ``{"label": ...}`` object first, then a label word."""
        return "text"

    def generator(self) -> Generator:
        """The model this candidate answers with (what ``candidate:NAME`` references resolve to)."""
        return self.ctx.generator_for(self.settings.model)

    def describe(self) -> dict[str, Any]:
        """Facts about this candidate for the manifest (model, training summary, ...)."""
        return {}


class Retriever(ABC):
    """Optional capability: an agent that retrieves passages for each question.

    It records them as ``contexts`` on its answers (``[{text, source, score, ...}]``); scoring then reports
    ``hit_rate@k`` and ``mrr`` for it when the questions name a supporting passage or source.
    """

    @property
    @abstractmethod
    def retrieval_k(self) -> int:
        """Passages retrieved per question."""


class Registrable(ABC):
    """Optional capability: an agent whose prepared model can be registered in Ollama.

    After every candidate is prepared, the runner asks :meth:`registration`; a request is exported to GGUF from
    the LoRA adapter the agent left in ``adapter/`` of its :attr:`AgentContext.folder` (as the fine-tune agent
    writes it), registered, and recorded under ``ollama`` in the manifest (a failure is a run note, never a
    crash).
    """

    @abstractmethod
    def registration(self) -> OllamaRegistration | None:
        """What to register (the recipe's ``register:`` key), or None for nothing."""


class Servable(ABC):
    """Optional capability: an agent whose trained model can be exported and evaluated in its served forms.

    After registration the runner asks :meth:`served_forms`; each form is exported to GGUF from the adapter in
    the agent's :attr:`AgentContext.folder` and answers as a candidate of its own (``NAME@FORM``) through
    llama.cpp, and through Ollama when the recipe names a host; scoring reports its parity with this agent.
    """

    @abstractmethod
    def served_forms(self) -> ServedForms | None:
        """Which forms to evaluate (the recipe's ``serve:`` key), or None for none."""


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
        parts = module_name.split(".")
        if not all(p.isidentifier() for p in parts) or not class_name.isidentifier():
            raise AgentError(
                f"agent {kind!r} is not 'package.module:Class' (an absolute module path and a class name)"
            )
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
