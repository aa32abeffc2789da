"""``bakeoff synthesize`` and ``bakeoff leakage``: the data-synthesis stage on its own, and the train/eval
overlap check. Heavy imports (dask, torch) happen inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bakeoff.cli._common import console, err, load_recipe_or_exit

__all__ = ["leakage", "synthesize"]


def synthesize(
    recipe: Annotated[Path, typer.Argument(help="Recipe YAML file with a `synthesize:` block.")],
    job: Annotated[
        list[str] | None, typer.Option("--job", help="Only these jobs (comma-separated; repeatable).")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="Delete the jobs' outputs and sidecars first, then generate everything."
        ),
    ] = False,
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Override where batches run: local, inline or tcp://HOST:PORT."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Override LocalCluster workers.")
    ] = None,
) -> None:
    """Write a recipe's synthesized data on Dask (skips finished chunks); counts per job, report beside output."""

    r = load_recipe_or_exit(recipe)
    if not r.synthesize:
        err.print(f"error: {recipe} has no `synthesize:` block", style="red")
        raise typer.Exit(2)
    from bakeoff.synth.jobs import SynthError, check_scheduler
    from bakeoff.synth.run import run_jobs

    if scheduler is not None:
        try:
            check_scheduler(scheduler)
        except ValueError as exc:
            err.print(f"error: --{exc}", style="red")
            raise typer.Exit(2) from None
    names = [n.strip() for item in (job or []) for n in item.split(",") if n.strip()]
    try:
        summaries = run_jobs(
            r, names or None, console=console, fresh=fresh, scheduler=scheduler, workers=workers
        )
    except SynthError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("interrupted; finished batches are kept and a re-run resumes", style="red")
        raise typer.Exit(130) from None
    failed = False
    for s in summaries:
        _print_summary(console, s)
        for error in s.errors[:3]:
            err.print(f"  batch failed: {error}", style="red", soft_wrap=True)
        for item in s.report.get("leakage", []):
            if item.get("leaks"):
                err.print(
                    f"  leakage: {s.name} shares {len(item['shared_chunks'])} chunk(s) and "
                    f"{len(item['shared_questions'])} question(s) with {item['a']}",
                    style="red",
                    soft_wrap=True,
                )
        failed |= bool(s.failed)
    if failed:
        err.print("some units failed; run the command again to retry them", style="yellow")
        raise typer.Exit(1)


def _print_summary(console, s) -> None:
    items = "chunks" if s.mode == "generate" else "texts"
    rejected = sum(s.rejected.values())
    reasons = ", ".join(f"{k} {v}" for k, v in sorted(s.rejected.items()))
    where = f"{s.where} ×{s.workers}" if s.where else "nothing to do"
    console.print(
        f"[bold]{s.name}[/] ({s.mode}): {items} {s.items} · units {s.units} · skipped {s.skipped} (already done) · "
        f"generated {s.generated} · accepted {s.accepted} · rejected {rejected}"
        + (f" ({reasons})" if reasons else "")
        + (f" · failed {s.failed}" if s.failed else "")
        + f" · {s.seconds:.1f}s · {where}",
        soft_wrap=True,
    )
    total = s.report.get("totals", {})
    rate = total.get("acceptance_rate")
    console.print(
        f"  {s.output}: {total.get('records_in_output', 0)} records"
        + (f", {rate:.0%} of all replies accepted" if rate is not None else "")
        + f"; report {s.output.name}.report.json",
        soft_wrap=True,
    )


def leakage(
    a: Annotated[Path, typer.Argument(help="A JSONL data set (e.g. synthesized training data).")],
    b: Annotated[Path, typer.Argument(help="Another JSONL data set (e.g. the evaluation set).")],
    recipe: Annotated[
        Path | None,
        typer.Option(
            "--recipe",
            help="Locate records that have a `passage` but no `chunk_id` in this recipe's corpus chunks.",
        ),
    ] = None,
) -> None:
    """What two JSONL data sets share (chunks, files, questions); exit 1 on shared chunks or questions."""
    from bakeoff.questions import DataError
    from bakeoff.synth.leakage import check_leakage

    chunks = None
    if recipe is not None:
        r = load_recipe_or_exit(recipe)
        if r.corpus is None:
            err.print(f"error: {recipe} has no corpus to locate passages in", style="red")
            raise typer.Exit(2)
        from bakeoff.rag.corpus import load_corpus

        chunks = load_corpus(r.corpus, recipe.resolve().parent).chunks
    try:
        result = check_leakage(a, b, chunks=chunks)
    except DataError as exc:
        err.print(f"error: {exc}", style="red")
        raise typer.Exit(2) from None
    console.print(f"{a}: {result.n_a} records · {b}: {result.n_b} records", soft_wrap=True)
    console.print(
        f"shared chunks:    {len(result.chunks)}"
        + (f"  {', '.join(result.chunks[:8])}" if result.chunks else "")
    )
    console.print(
        f"shared sources:   {len(result.sources)}"
        + (f"  {', '.join(result.sources[:8])}" if result.sources else "")
    )
    console.print(f"shared questions: {len(result.questions)}", soft_wrap=True)
    for q in result.questions[:5]:
        console.print(f"  {q}", soft_wrap=True, markup=False)
    for side, n in result.unlocated.items():
        console.print(f"[yellow]{n} record(s) of {side} have no chunk id or locatable passage[/]")
    if result.leaks:
        err.print("leakage: the sets share chunks or questions", style="red")
        raise typer.Exit(1)
    console.print("[green]✓[/] no shared chunks or questions")
