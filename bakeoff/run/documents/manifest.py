"""``manifest.json`` as a pydantic model: :class:`Manifest`, read by ``bakeoff show``/``runs``, the report and the
console. :class:`~bakeoff.run.store.RunWriter` writes the file (a dict the run adds facts to as it goes)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bakeoff.run.documents.base import Document, Number, RunDocument

__all__ = ["CandidateFacts", "Manifest"]


class CandidateFacts(Document):
    """How one candidate answered (``candidates.<c>``); the agent's own facts (``describe()``: ``k``,
    ``system``, ``training``, ...) are kept as further keys."""

    agent: str | None = None
    """The agent kind (``fewshot``, ``rag``, ``finetuned``, a plugin's name)."""
    model: str | None = None
    """The model reference it generated with."""
    answer_s: Number | None = None
    """Seconds it took to answer every question."""
    errors: int = 0
    truncated_answers: int = 0
    truncated_prompts: int = 0
    failed: str | None = None
    """The first error, when every answer of the candidate is one (see :mod:`bakeoff.eval.failures`)."""


class Manifest(RunDocument):
    """``manifest.json``: what ran, where, with which versions, how long each stage took, how it ended.

    :class:`~bakeoff.run.store.RunWriter` writes it first (``running``) and last (``complete``/``failed``);
    stages and agents add facts as the run goes (the corpus indexing report, Ollama registrations, ...)."""

    run_id: str | None = None
    recipe: str | None = None
    """The recipe's name (the run folder's parent)."""
    status: str = "unreadable"
    """``running``, ``complete``, ``partial`` (some candidates failed), ``failed`` (on disk);
    :func:`~bakeoff.run.store.read_run` reads a running run whose process is gone as ``interrupted``."""
    started_at: str | None = None
    """ISO 8601, UTC."""
    ended_at: str | None = None
    pid: int | None = None
    """The process writing the run (tells a live run from an interrupted one)."""
    host: str | None = None
    argv: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)
    """Python and every library that shapes the results."""
    hardware: dict[str, Any] = Field(default_factory=dict)
    timings_s: dict[str, Number] = Field(default_factory=dict)
    """Stage -> seconds (``synthesize``, ``prepare``, ``register``, ``answer``, ``score``)."""
    candidates: dict[str, CandidateFacts] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    """Facts recorded during the run (e.g. a QLoRA → LoRA fallback)."""
    recipe_path: str | None = None
    """The recipe file it was run from (relative paths resolve against its folder)."""
    task: str | None = None
    n_questions: int | None = None
    answering: list[str] = Field(default_factory=list)
    """The candidates that answer (``--only``), which ``--resume`` continues."""
    synthesize: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Synthesize job -> its totals."""
    prepare_s: dict[str, Number] = Field(default_factory=dict)
    """Candidate -> seconds of preparation (indexing, training)."""
    corpus: dict[str, Any] | None = None
    """What indexing the corpus found (documents, chunks, store, collection)."""
    ollama: dict[str, Any] | None = None
    """Ollama registrations of trained candidates."""
    served: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Served forms (``lora@q8_0``): the export (GGUF, sha256, cache hit), the engine, the template sent, and
    after scoring their ``parity`` with the training-time candidate (as in ``scores.json``)."""
    resumed_at: list[str] = Field(default_factory=list)
    """When ``--resume`` continued the run."""
    error: str | None = None
    """Why a failed run failed."""
