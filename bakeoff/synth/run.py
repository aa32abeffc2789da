"""Running synthesize jobs: skip the finished units, fan batches out, check, append, report.

What the units are and how a re-run knows which are done is :mod:`bakeoff.synth.plan`; the report
:mod:`bakeoff.synth.report`. Each finished batch is committed in order: accepted records are appended to the
output in one write, rejected replies to ``.rejected.jsonl``, then the batch's units to the ledger (the commit
point). A run killed mid-way leaves at most one torn batch; the next run drops records whose unit never reached
the ledger and redoes it. Duplicates are checked here, across every batch and the records already in the file.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.io import append_jsonl, cut_torn_tail, dumps_jsonl, read_jsonl, write_text_atomic
from bakeoff.synth.jobs import GenerateJob, LabelJob, SynthError
from bakeoff.synth.outputs import JobFiles, find_job, job_files
from bakeoff.synth.plan import WorkerSpec, plan_job, unit_meta
from bakeoff.synth.report import JobSummary, write_report

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.agents.synthesizer import ChunkTask, Deduplicator, LabelTask, UnitResult
    from bakeoff.models.generators import Generator
    from bakeoff.recipe.schema import Recipe

__all__ = ["run_job", "run_jobs", "synthesize_batch"]


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
    commit = _Commit(files, ledger, dedupe, unit_meta(plan), summary)
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
    summary.report = write_report(recipe, job, plan, files, ledger, summary)
    return summary


class _Commit:
    """Commits finished units in order: accepted records, then rejected replies, then the ledger lines (the
    commit point); counts go to the summary, and a record whose text was seen before is a duplicate."""

    def __init__(
        self,
        files: JobFiles,
        ledger: dict[str, dict[str, Any]],
        dedupe: Deduplicator,
        meta: dict[str, dict[str, Any]],
        summary: JobSummary,
    ) -> None:
        self.files = files
        self.ledger = ledger
        self.dedupe = dedupe
        self.meta = meta
        self.summary = summary

    def __call__(self, results: Sequence[UnitResult]) -> None:
        accepted: list[dict[str, Any]] = []
        rejected_rows: list[dict[str, Any]] = []
        ledger_rows: list[dict[str, Any]] = []
        for result in results:
            meta = self.meta.get(result.key, {})
            reasons = Counter(r.reason for r in result.rejected)
            for rej in result.rejected:
                rejected_rows.append({"unit": result.key, **meta, **rej.__dict__})
            kept = 0
            for record in result.records:
                text = record.get("question") or record.get("text") or ""
                if self.dedupe.admit(text):
                    accepted.append(record)
                    kept += 1
                else:
                    reasons["duplicate"] += 1
                    rejected_rows.append({"unit": result.key, **meta, "reason": "duplicate", "detail": text})
            self.summary.generated += result.generated
            self.summary.accepted += kept
            self.summary.rejected.update(reasons)
            if result.failed:
                self.summary.failed += 1
                continue
            ledger_rows.append(
                {
                    "unit": result.key,
                    **meta,
                    "generated": result.generated,
                    "accepted": kept,
                    "rejected": dict(reasons),
                }
            )
        append_jsonl(self.files.output, accepted)
        append_jsonl(self.files.rejected, rejected_rows)
        append_jsonl(self.files.ledger, ledger_rows)  # the commit point
        for row in ledger_rows:
            self.ledger[row["unit"]] = row


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
