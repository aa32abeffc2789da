"""The run context: what agents get from the runner instead of the whole recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.models import CandidateRef, ModelRef

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.backends import Generator
    from bakeoff.corpus import CorpusSpec
    from bakeoff.plugins import Agent

__all__ = ["ModelPool", "RunContext"]


class ModelPool:
    """Loaded models by reference, so candidates on the same base share one copy in memory."""

    def __init__(self) -> None:
        self._generators: dict[str, Generator] = {}

    def get(self, ref: ModelRef) -> Generator:
        from bakeoff.backends import load_generator

        key = str(ref)
        if key not in self._generators:
            self._generators[key] = load_generator(ref)
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
        synthesize: the recipe's synthesize jobs (``bakeoff.synth.synthesized_path(ctx, NAME)``).
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
    synthesize: list[Any] = field(default_factory=list)

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
