"""Planning a synthesize job: its units, in order, with the keys that make a re-run skip finished work.

A *unit* is one chunk × kind (``per_chunk`` records) for a generate job, one text for a label job. Its key is
a hash of what decides its records — chunk id, kind, ``per_chunk`` and generator (label jobs: text, label set,
examples and generator) — so a re-run skips every unit already in the ledger and only missing work is done.
Seeds, decoding settings and thresholds are not part of the key: after changing them, ``--fresh`` starts over.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.io import read_jsonl
from bakeoff.synth.jobs import GenerateJob, LabelJob, SynthError
from bakeoff.synth.outputs import JobFiles, find_job, job_files

if TYPE_CHECKING:
    from bakeoff.agents.synthesizer import ChunkTask, UnitResult
    from bakeoff.models.refs import ModelRef
    from bakeoff.rag.corpus import Chunk
    from bakeoff.recipe.schema import Recipe

__all__ = ["Plan", "WorkerSpec", "plan_job", "unit_meta"]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs besides the units (small and picklable: no model, no recipe)."""

    mode: str
    generator: ModelRef
    generation: Any  # GenerationSettings
    min_support: float = 0.6
    labels: tuple[str, ...] = ()
    examples: tuple[tuple[str, str], ...] = ()


def _key(*parts: Any) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()[:32]


@dataclass
class Plan:
    """The units of a job, in order, and facts for the report."""

    tasks: list[Any]
    items: int  # chunks (generate) or texts (label) planned
    spec: WorkerSpec
    per_task: int
    pre_rejected: list[UnitResult] = field(default_factory=list)  # label: empty or duplicate input texts
    notes: list[str] = field(default_factory=list)


def _corpus_chunks(recipe: Recipe) -> list[Chunk]:
    from bakeoff.rag.corpus import load_corpus

    if recipe.corpus is None:
        raise SynthError("a generate job reads the corpus; add a top-level `corpus:` block")
    base = recipe.source_path.parent if recipe.source_path else Path.cwd()
    corpus = load_corpus(recipe.corpus, base)
    if not corpus.chunks:
        raise SynthError("the corpus has no chunks (no readable files?)")
    return corpus.chunks


def _pick_chunks(job: GenerateJob, chunks: list[Chunk], recipe: Recipe, seen: set[str]) -> list[Chunk]:
    """The job's chunks: seeded order, other jobs' chunks (or files) left out, at most ``max_chunks``."""
    if job.name in seen:
        raise SynthError(f"synthesize jobs are disjoint from each other in a cycle ({job.name})")
    excluded_ids: set[str] = set()
    excluded_sources: set[str] = set()
    for other_name in job.disjoint_from:
        other = find_job(recipe, other_name)
        assert isinstance(other, GenerateJob)  # check_jobs guarantees it
        theirs = _pick_chunks(other, chunks, recipe, seen | {job.name})
        ids = {c.id for c in theirs} | _written_chunk_ids(job_files(other))
        excluded_ids |= ids
        excluded_sources |= {c.source for c in chunks if c.id in ids}
    order = list(chunks)
    random.Random(f"{job.seed}:chunks").shuffle(order)
    if job.disjoint_by == "source":
        order = [c for c in order if c.source not in excluded_sources]
    else:
        order = [c for c in order if c.id not in excluded_ids]
    return order[: job.max_chunks] if job.max_chunks else order


def _written_chunk_ids(files: JobFiles) -> set[str]:
    """Chunk ids already in a job's output (they count even if that job's plan has changed since)."""
    if not files.output.is_file():
        return set()
    return {r["chunk_id"] for r in read_jsonl(files.output) if isinstance(r.get("chunk_id"), str)}


def _label_examples(job: LabelJob) -> list[tuple[str, str]]:
    if job.examples is None or job.k == 0:
        return []
    from bakeoff.questions import read_records

    pool = []
    for row in read_records(job.examples):
        text = row.get("text") or row.get("question") or row.get("input")
        label = row.get("label") or row.get("answer") or row.get("reference")
        if isinstance(text, str) and isinstance(label, str):
            pool.append((text, label))
    random.Random(f"{job.seed}:examples").shuffle(pool)
    return pool[: job.k]


def plan_job(recipe: Recipe, job: GenerateJob | LabelJob) -> Plan:
    """Turn a job into its units (reads the corpus or the texts file).

    Raises:
        SynthError: no corpus, no chunks, unreadable texts.
    """
    generator = job.generator or recipe.base_model
    if isinstance(job, GenerateJob):
        chunks = _pick_chunks(job, _corpus_chunks(recipe), recipe, set())
        tasks = [_chunk_task(job, chunk, kind, str(generator)) for chunk in chunks for kind in job.kinds]
        spec = WorkerSpec("generate", generator, job.generation, job.min_support)
        return Plan(tasks, len(chunks), spec, job.chunks_per_task * len(job.kinds))
    return _plan_label(recipe, job, generator)


def _chunk_task(job: GenerateJob, chunk: Chunk, kind: str, generator: str) -> ChunkTask:
    from bakeoff.agents.synthesizer import ChunkTask

    key = _key("generate", chunk.id, kind, job.per_chunk, generator)
    return ChunkTask(key, chunk.id, chunk.source, chunk.text, kind, job.per_chunk, job.seed)


def _plan_label(recipe: Recipe, job: LabelJob, generator: ModelRef) -> Plan:
    from bakeoff.agents.synthesizer import Deduplicator, LabelTask, Rejection, UnitResult
    from bakeoff.questions import DataError, read_records

    labels = tuple(job.labels or recipe.labels or ())
    examples = tuple(_label_examples(job))
    prompt_key = _key(labels, examples)
    try:
        rows = read_records(Path(job.from_))
    except DataError as exc:
        raise SynthError(str(exc)) from None
    if job.max_texts:
        rows = rows[: job.max_texts]
    tasks, pre = [], []
    dedupe = Deduplicator()
    for row in rows:
        text = next((row[k] for k in ("text", "question", "input") if isinstance(row.get(k), str)), "")
        rid = str(row.get("id", f"line{row['__line__']}"))
        key = _key("label", rid, text, prompt_key, generator)
        if not text.strip():
            pre.append(UnitResult(key, rejected=[Rejection("empty_field", f"{rid}: no text")]))
        elif not dedupe.admit(text):
            pre.append(
                UnitResult(key, rejected=[Rejection("duplicate", f"{rid}: same text as an earlier line")])
            )
        else:
            gold = row.get("label")
            tasks.append(LabelTask(key, rid, text, gold if isinstance(gold, str) else None))
    spec = WorkerSpec("label", generator, job.generation, labels=labels, examples=examples)
    return Plan(tasks, len(rows), spec, job.texts_per_task, pre_rejected=pre)


def unit_meta(plan: Plan) -> dict[str, dict[str, Any]]:
    """What the ledger and the rejected file record about each unit besides its key."""
    meta: dict[str, dict[str, Any]] = {}
    for task in plan.tasks:
        if hasattr(task, "chunk_id"):
            meta[task.key] = {"chunk_id": task.chunk_id, "source": task.source, "kind": task.kind}
        else:
            meta[task.key] = {"id": task.id, "kind": "label"}
    return meta
