"""Running synthesize jobs: plan the units, skip the finished ones, fan batches out, check, append, report.

A *unit* is one chunk × kind (``per_chunk`` records) for a generate job, one text for a label job. Its key is
a hash of what decides its records — chunk id, kind, ``per_chunk`` and generator (label jobs: text, label set,
examples and generator) — so a re-run skips every unit already in the ledger and only missing work is done.
Seeds, decoding settings and thresholds are not part of the key: after changing them, ``--fresh`` starts over.

Each finished batch is committed in order: accepted records are appended to the output in one write, rejected
replies to ``.rejected.jsonl``, then the batch's units to the ledger (the commit point). A run killed mid-way
leaves at most one torn batch; the next run drops records whose unit never reached the ledger and redoes it.
Duplicates are checked here, across every batch and the records already in the file.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.io import append_jsonl, cut_torn_tail, dumps_jsonl, read_jsonl, write_text_atomic
from bakeoff.synth.jobs import GenerateJob, LabelJob, SynthError
from bakeoff.synth.leakage import check_leakage
from bakeoff.synth.outputs import JobFiles, find_job, job_files

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.agents.synthesizer import ChunkTask, LabelTask, UnitResult
    from bakeoff.models.generators import Generator
    from bakeoff.models.refs import ModelRef
    from bakeoff.rag.corpus import Chunk
    from bakeoff.recipe.schema import Recipe

__all__ = ["JobSummary", "WorkerSpec", "plan_job", "run_job", "run_jobs", "synthesize_batch"]


# -- what workers get ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs besides the units (small and picklable: no model, no recipe)."""

    mode: str
    generator: ModelRef
    generation: Any  # GenerationSettings
    min_support: float = 0.6
    labels: tuple[str, ...] = ()
    examples: tuple[tuple[str, str], ...] = ()


def synthesize_batch(
    payload: tuple[WorkerSpec, Sequence[ChunkTask | LabelTask]], generator: Generator | None = None
) -> list[UnitResult]:
    """Run one batch of units: the Dask task (the generator comes from the worker's cache), or inline."""
    from bakeoff.agents.synthesizer import Labeller, Synthesizer

    spec, tasks = payload
    if generator is None:
        from bakeoff.parallel import worker_generator

        generator = worker_generator(spec.generator)
    if spec.mode == "label":
        return Labeller(
            generator, labels=spec.labels, examples=spec.examples, generation=spec.generation
        ).run(tasks)
    return Synthesizer(generator, generation=spec.generation, min_support=spec.min_support).run(tasks)


# -- planning -----------------------------------------------------------------------------------------------
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


# -- files --------------------------------------------------------------------------------------------------
def _recover(files: JobFiles) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]], int]:
    """The ledger (unit -> line), the records in the output, and how many torn records were dropped."""
    for path in (files.output, files.ledger):
        cut_torn_tail(path)
    ledger = {row["unit"]: row for row in read_jsonl(files.ledger) if isinstance(row.get("unit"), str)}
    records = read_jsonl(files.output)
    kept = [r for r in records if r.get("unit") in ledger]
    dropped = len(records) - len(kept)
    if dropped or (files.output.is_file() and len(records) != _count_lines(files.output)):
        write_text_atomic(files.output, dumps_jsonl(kept))
    return ledger, kept, dropped


def _count_lines(path: Path) -> int:
    with path.open(encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


# -- running ------------------------------------------------------------------------------------------------
@dataclass
class JobSummary:
    """What one ``run_job`` did (``last run``) and what the output holds now (``totals``)."""

    name: str
    mode: str
    output: Path
    items: int  # chunks or texts planned
    units: int
    skipped: int  # units already done before this run
    generated: int = 0
    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    failed: int = 0  # units whose batch failed or hit a generation error (retried next run)
    seconds: float = 0.0
    where: str = ""
    workers: int = 0
    errors: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def leaks(self) -> bool:
        return any(item.get("leaks") for item in self.report.get("leakage", []))


def run_job(
    recipe: Recipe,
    job: GenerateJob | LabelJob,
    *,
    console: Console | None = None,
    fresh: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
    generator: Generator | None = None,
) -> JobSummary:
    """Run one job: skip finished units, run the rest in batches, append what passes, write the report.

    Args:
        recipe: the loaded recipe (corpus, labels, base model).
        job: one of its ``synthesize:`` jobs.
        console: where progress is shown (None: quiet).
        fresh: delete the output and its sidecars first.
        scheduler: override the job's ``scheduler`` (``local``, ``inline``, ``tcp://...``).
        workers: override the job's ``workers`` (LocalCluster only).
        generator: an already-loaded generator for ``inline`` runs (tests, the console).

    Raises:
        SynthError: the job cannot run (no corpus, unreadable texts, unreachable scheduler).
    """
    from filelock import FileLock, Timeout

    files = job_files(job)
    files.output.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(files.output) + ".lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise SynthError(
            f"{job.name}: another process is writing {files.output}; wait for it to finish"
        ) from None
    try:
        return _run_job(recipe, job, files, console, fresh, scheduler, workers, generator)
    finally:
        lock.release()


def _run_job(
    recipe: Recipe,
    job: GenerateJob | LabelJob,
    files: JobFiles,
    console: Console | None,
    fresh: bool,
    scheduler: str | None,
    workers: int | None,
    generator: Generator | None,
) -> JobSummary:
    from rich.console import Console

    console = console or Console(quiet=True)
    started = time.perf_counter()
    if fresh:
        for path in files.all():
            path.unlink(missing_ok=True)
    plan = plan_job(recipe, job)
    ledger, records, dropped = _recover(files)
    if dropped:
        console.print(
            f"[yellow]{job.name}: dropped {dropped} record(s) of an unfinished batch; redoing it[/]"
        )
    from bakeoff.agents.synthesizer import Deduplicator

    dedupe = Deduplicator([r.get("question") or r.get("text") or "" for r in records])
    todo = [t for t in plan.tasks if t.key not in ledger]
    pre = [r for r in plan.pre_rejected if r.key not in ledger]
    summary = JobSummary(
        job.name,
        job.mode,
        files.output,
        plan.items,
        len(plan.tasks) + len(plan.pre_rejected),
        skipped=len(plan.tasks) - len(todo) + len(plan.pre_rejected) - len(pre),
    )
    meta = _unit_meta(plan)

    def commit(results: Sequence[UnitResult]) -> None:
        accepted, rejected_rows, ledger_rows = [], [], []
        for result in results:
            reasons = Counter(r.reason for r in result.rejected)
            for rej in result.rejected:
                rejected_rows.append({"unit": result.key, **meta.get(result.key, {}), **rej.__dict__})
            kept = 0
            for record in result.records:
                text = record.get("question") or record.get("text") or ""
                if dedupe.admit(text):
                    accepted.append(record)
                    kept += 1
                else:
                    reasons["duplicate"] += 1
                    rejected_rows.append(
                        {
                            "unit": result.key,
                            **meta.get(result.key, {}),
                            "reason": "duplicate",
                            "detail": text,
                        }
                    )
            summary.generated += result.generated
            summary.accepted += kept
            summary.rejected.update(reasons)
            if result.failed:
                summary.failed += 1
                continue
            ledger_rows.append(
                {
                    "unit": result.key,
                    **meta.get(result.key, {}),
                    "generated": result.generated,
                    "accepted": kept,
                    "rejected": dict(reasons),
                }
            )
        append_jsonl(files.output, accepted)
        append_jsonl(files.rejected, rejected_rows)
        append_jsonl(files.ledger, ledger_rows)  # the commit point
        for row in ledger_rows:
            ledger[row["unit"]] = row

    commit(pre)
    batches = [todo[i : i + plan.per_task] for i in range(0, len(todo), plan.per_task)]
    where = scheduler or job.scheduler
    if not batches:
        console.print(f"synthesize {job.name}: up to date ({summary.skipped} of {summary.units} units done)")
    else:
        summary.where, summary.workers = _execute(
            batches, plan.spec, commit, summary, console, job, where, workers or job.workers, generator
        )
    summary.seconds = round(time.perf_counter() - started, 2)
    summary.report = _write_report(recipe, job, plan, files, ledger, summary)
    return summary


def _unit_meta(plan: Plan) -> dict[str, dict[str, Any]]:
    meta: dict[str, dict[str, Any]] = {}
    for task in plan.tasks:
        if hasattr(task, "chunk_id"):
            meta[task.key] = {"chunk_id": task.chunk_id, "source": task.source, "kind": task.kind}
        else:
            meta[task.key] = {"id": task.id, "kind": "label"}
    return meta


def _execute(
    batches: list[list[Any]],
    spec: WorkerSpec,
    commit: Callable[[Sequence[UnitResult]], None],
    summary: JobSummary,
    console: Console,
    job: GenerateJob | LabelJob,
    where: str,
    workers: int | None,
    generator: Generator | None,
) -> tuple[str, int]:
    from bakeoff.parallel import open_executor
    from bakeoff.progress import progress_bar

    fn: Callable[[Any], Any] = synthesize_batch
    if where == "inline":
        if generator is None:
            from bakeoff.models.registry import load_generator

            generator = load_generator(spec.generator)
        fn = partial(synthesize_batch, generator=generator)
    units = sum(len(b) for b in batches)
    try:
        executor_cm = open_executor(where, workers, n_tasks=len(batches))
        with executor_cm as executor, progress_bar(console) as bar:
            what = "chunk×kind units" if job.mode == "generate" else "texts"
            console.print(
                f"[bold]synthesize[/] {job.name}: {units} {what} in {len(batches)} task(s) on "
                f"{executor.where} ({executor.workers} worker{'s' if executor.workers != 1 else ''})",
                soft_wrap=True,
            )
            task = bar.add_task(f"{job.name}", total=units)
            for i, results, error in executor.map_unordered(fn, [(spec, b) for b in batches]):
                if error is not None:
                    summary.failed += len(batches[i])
                    summary.errors.append(f"{type(error).__name__}: {error}")
                else:
                    commit(results)
                bar.update(
                    task, advance=len(batches[i]), description=f"{job.name} · {summary.accepted} accepted"
                )
            return executor.where, executor.workers
    except OSError as exc:  # an unreachable scheduler address
        raise SynthError(f"{job.name}: cannot reach Dask scheduler {where}: {exc}") from None


def _reason_counts(rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    total: Counter = Counter()
    for row in rows:
        total.update(row.get("rejected") or {})
    return dict(sorted(total.items()))


def _write_report(
    recipe: Recipe,
    job: GenerateJob | LabelJob,
    plan: Plan,
    files: JobFiles,
    ledger: dict[str, dict[str, Any]],
    summary: JobSummary,
) -> dict[str, Any]:
    from bakeoff.agents.synthesizer import DEFAULT_MIN_SUPPORT  # noqa: F401 - documented threshold lives there

    planned = {t.key for t in plan.tasks} | {r.key for r in plan.pre_rejected}
    rows = list(ledger.values())
    generated = sum(r.get("generated", 0) for r in rows)
    accepted = sum(r.get("accepted", 0) for r in rows)
    records = read_jsonl(files.output)
    report: dict[str, Any] = {
        "job": job.name,
        "mode": job.mode,
        "output": str(files.output),
        "generator": str(plan.spec.generator),
        "settings": job.model_dump(mode="json", by_alias=True, exclude={"output"}),
        "totals": {
            "items": plan.items,
            "units_planned": len(planned),
            "units_done": len(planned & ledger.keys()),
            "units_stale": len(ledger.keys() - planned),
            "generated": generated,
            "accepted": accepted,
            "records_in_output": len(records),
            "rejected": _reason_counts(rows),
            "acceptance_rate": round(accepted / generated, 4) if generated else None,
        },
        "last_run": {
            "skipped_units": summary.skipped,
            "generated": summary.generated,
            "accepted": summary.accepted,
            "rejected": dict(sorted(summary.rejected.items())),
            "failed_units": summary.failed,
            "errors": summary.errors[:10],
            "seconds": summary.seconds,
            "where": summary.where or "nothing to do",
            "workers": summary.workers,
        },
        "checks": _checks_doc(job),
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    if isinstance(job, GenerateJob):
        report["totals"]["by_kind"] = dict(Counter(r.get("kind") for r in records))
        if job.disjoint_from:
            report["leakage"] = []
            for other in job.disjoint_from:
                theirs = job_files(find_job(recipe, other)).output
                if theirs.is_file() and files.output.is_file():
                    report["leakage"].append(check_leakage(theirs, files.output).to_dict())
                else:
                    report["leakage"].append(
                        {
                            "a": str(theirs),
                            "b": str(files.output),
                            "leaks": False,
                            "note": "not checked: a file does not exist yet",
                        }
                    )
    else:
        with_gold = [r for r in records if isinstance(r.get("gold"), str)]
        if with_gold:
            agree = sum(r["gold"] == r["label"] for r in with_gold)
            report["totals"]["agreement_with_input_labels"] = {
                "records": len(with_gold),
                "agree": agree,
                "rate": round(agree / len(with_gold), 4),
            }
        report["totals"]["by_label"] = dict(Counter(r.get("label") for r in records))
    write_text_atomic(files.report, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    return report


def _checks_doc(job: GenerateJob | LabelJob) -> dict[str, str]:
    if isinstance(job, LabelJob):
        return {
            "unparseable_label": 'the reply names no label ({"label": ...} first, then the earliest label word)',
            "duplicate": "same normalised text as an earlier input line or record",
            "empty_field": "an input line without text",
        }
    return {
        "malformed_json": "no JSON object in the reply",
        "empty_field": "question or answer missing or blank",
        "unsupported": f"fewer than {job.min_support:.0%} of the answer's content words occur in the chunk, or "
        "the answer has a number the chunk lacks",
        "echo": "the question repeats the answer (a copied sentence)",
        "duplicate": "same normalised question as an accepted record",
        "generation_error": "the backend failed (the unit is retried next run)",
    }


def run_jobs(
    recipe: Recipe,
    names: Sequence[str] | None = None,
    *,
    console: Console | None = None,
    fresh: bool = False,
    scheduler: str | None = None,
    workers: int | None = None,
) -> list[JobSummary]:
    """Run the recipe's jobs (or those named), in an order where a job runs after the jobs it is disjoint from.

    Raises:
        SynthError: an unknown name, or a job that cannot run.
    """
    jobs = list(recipe.synthesize or [])
    wanted = [find_job(recipe, n) for n in names] if names else jobs
    ordered: list[GenerateJob | LabelJob] = []

    def add(job: GenerateJob | LabelJob) -> None:
        if job in ordered:
            return
        for other in getattr(job, "disjoint_from", []):
            other_job = find_job(recipe, other)
            if other_job in wanted:
                add(other_job)
        ordered.append(job)

    for job in wanted:
        add(job)
    return [
        run_job(recipe, job, console=console, fresh=fresh, scheduler=scheduler, workers=workers)
        for job in ordered
    ]
