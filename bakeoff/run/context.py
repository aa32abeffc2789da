"""The run context: what the runner shares among the candidates of one run, and the narrow view of it that each
agent gets (:class:`CandidateContext`, an implementation of :class:`bakeoff.agents.base.AgentContext`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from bakeoff.models.refs import CandidateRef, ModelRef

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.agents.base import Agent
    from bakeoff.models.generators import Generator
    from bakeoff.rag.chroma import ChromaSpec
    from bakeoff.rag.corpus import CorpusSpec
    from bakeoff.rag.vectorstore import VectorStore
    from bakeoff.synth.jobs import SynthesizedRef

__all__ = ["CandidateContext", "ModelPool", "RunContext", "RunCorpus"]


class ModelPool:
    """Loaded models by reference, so candidates on the same base share one copy in memory.

    Args:
        ollama_host: the recipe's Ollama server for ``ollama:`` models (``None``: OLLAMA_HOST, else the default).
    """

    def __init__(self, ollama_host: str | None = None) -> None:
        self._generators: dict[str, Generator] = {}
        self.ollama_host = ollama_host

    def get(self, ref: ModelRef) -> Generator:
        from bakeoff.models.registry import load_generator

        key = str(ref)
        if key not in self._generators:
            self._generators[key] = load_generator(ref, ollama_host=self.ollama_host)
        return self._generators[key]

    def put(self, key: str, generator: Generator) -> None:
        self._generators[key] = generator


@dataclass
class RunContext:
    """Facts and services shared by the candidates of one run: the runner's side.

    Agents never see it whole: each gets a :class:`CandidateContext` (:meth:`for_candidate`).

    Attributes:
        task: ``"qa"`` or ``"classification"``.
        labels: the label set (classification) or empty.
        base_model: the recipe's default model.
        recipe_dir: folder of the recipe (relative paths were resolved against it).
        recipe_name: the recipe's name (namespaces caches and collections).
        run_dir: the run folder being written, or None outside a run (chat, validate).
        console: where agents print (progress, notes).
        models: the shared model pool.
        agents: the run's agents by name, for ``candidate:NAME`` model references.
        corpus: the recipe's corpus block (None when the recipe has none).
        embeddings: the recipe's embedding model reference.
        chroma: the recipe's vector-store block (None: embedded Chroma in the default folder).
        manifest: facts for the top level of the run manifest (e.g. ``corpus``: what indexing found).
        resources: objects the candidates of one run share (e.g. the opened vector store), by owner key.
        ollama_host: the recipe's Ollama server (``None``: OLLAMA_HOST, else http://127.0.0.1:11434).
        retrain: train fine-tuned candidates again even when the training cache has their weights.
        synthesize: the recipe's synthesize jobs (``bakeoff.synth.outputs.synthesized_path(ctx, NAME)``).
    """

    task: str
    labels: list[str]
    base_model: ModelRef
    recipe_dir: Path
    recipe_name: str
    console: Console
    run_dir: Path | None = None
    models: ModelPool = field(default_factory=ModelPool)
    agents: dict[str, Agent] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    corpus: CorpusSpec | None = None
    embeddings: ModelRef | None = None
    chroma: ChromaSpec | None = None
    manifest: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)
    ollama_host: str | None = None

    retrain: bool = False
    may_train: bool = True  # False in the console, which reads runs and never trains in-process
    synthesize: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.ollama_host and self.models.ollama_host is None:
            self.models.ollama_host = self.ollama_host

    def generator_for(self, ref: ModelRef | None) -> Generator:
        """The generator for a model reference (``None`` = the recipe's base model)."""
        ref = ref or self.base_model
        if isinstance(ref, CandidateRef):
            other = self.agents.get(ref.candidate)
            if other is None:
                raise KeyError(f"candidate {ref.candidate!r} is not part of this run")
            return other.generator()
        return self.models.get(ref)

    def note(self, message: str) -> None:
        """Record a fact for the manifest and show it."""
        self.notes.append(message)
        self.console.print(f"[yellow]note:[/] {message}")

    def for_candidate(self, name: str) -> CandidateContext:
        """The view of this run that candidate ``name`` gets."""
        return CandidateContext(self, name)


class RunCorpus:
    """The recipe's corpus as agents use it (:class:`bakeoff.agents.base.Corpus`): one index per run."""

    def __init__(self, run: RunContext, spec: CorpusSpec, candidate: str) -> None:
        self._run = run
        self._spec = spec
        self._candidate = candidate

    @property
    def embeddings(self) -> ModelRef | None:
        return self._run.embeddings

    def index(self) -> VectorStore:
        from bakeoff.rag.indexing import run_index

        return run_index(self._run)

    def chunk_texts(self) -> list[str]:
        from bakeoff.rag.corpus import load_corpus

        corpus = load_corpus(self._spec, self._run.recipe_dir)
        for skipped in corpus.skipped:
            self._run.console.print(
                f"[yellow]{self._candidate}: skipped {skipped.source}: {skipped.reason}[/]"
            )
        return [chunk.text for chunk in corpus.chunks]


class CandidateContext:
    """What one candidate sees of its run (:class:`bakeoff.agents.base.AgentContext`): the task, the labels,
    models, notes, its folder and the corpus — never the recipe, the other agents or the manifest."""

    def __init__(self, run: RunContext, name: str) -> None:
        self._run = run
        self._name = name

    @property
    def task(self) -> Literal["qa", "classification"]:
        return self._run.task  # type: ignore[return-value]  # validated by the recipe

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self._run.labels)

    @property
    def console(self) -> Console:
        return self._run.console

    @property
    def base_model(self) -> ModelRef:
        return self._run.base_model

    @property
    def run_dir(self) -> Path | None:
        return self._run.run_dir

    @property
    def folder(self) -> Path | None:
        return self._run.run_dir / "training" / self._name if self._run.run_dir is not None else None

    @property
    def corpus(self) -> RunCorpus | None:
        spec = self._run.corpus
        return RunCorpus(self._run, spec, self._name) if spec is not None else None

    @property
    def retrain(self) -> bool:
        return self._run.retrain

    @property
    def may_train(self) -> bool:
        return self._run.may_train

    def generator_for(self, ref: ModelRef | None) -> Generator:
        return self._run.generator_for(ref)

    def note(self, message: str) -> None:
        self._run.note(message)

    def data_path(self, value: Path | SynthesizedRef) -> Path:
        from bakeoff.questions import DataError
        from bakeoff.synth.jobs import SynthError
        from bakeoff.synth.outputs import resolve_data_path

        try:
            return resolve_data_path(self._run, value)
        except SynthError as exc:
            raise DataError(str(exc)) from None
