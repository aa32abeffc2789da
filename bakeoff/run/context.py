"""The run context: what agents get from the runner instead of the whole recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.models.refs import CandidateRef, ModelRef

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.agents.base import Agent
    from bakeoff.models.generators import Generator
    from bakeoff.rag.chroma import ChromaSpec
    from bakeoff.rag.corpus import CorpusSpec

__all__ = ["ModelPool", "RunContext"]


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
    """Facts and services shared by the candidates of one run.

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
