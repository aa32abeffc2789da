"""``bakeoff run``: load → prepare → answer → score → write, as a straight line."""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console

from bakeoff.agents.base import Agent, AgentSettings, load_agent_class
from bakeoff.core import Question
from bakeoff.errors import BakeoffError
from bakeoff.models.refs import CandidateRef
from bakeoff.progress import progress_bar
from bakeoff.questions import load_questions
from bakeoff.recipe.schema import Recipe
from bakeoff.run.context import RunContext
from bakeoff.run.store import RunWriter

__all__ = ["RunError", "build_agents", "make_context", "run_recipe", "select_candidates"]


class RunError(BakeoffError):
    """A run cannot start (bad --only, unreadable data); the message says what to fix."""


def select_candidates(
    recipe: Recipe, only: Iterable[str] | None
) -> tuple[list[AgentSettings], list[AgentSettings]]:
    """The candidates to answer (``--only``) and every candidate they need (``candidate:NAME`` models),
    dependencies first."""
    wanted = [n.strip() for item in (only or []) for n in item.split(",") if n.strip()]
    # A swept candidate's name selects every candidate of its sweep (`--only lora` → lora[lr=5e-5], ...).
    selected: list[str] = []
    for n in wanted:
        members = [c for c in recipe.names if c.startswith(n + "[")]
        selected.extend(members if members and n not in recipe.names else [n])
    wanted = selected
    unknown = [n for n in wanted if n not in recipe.names]
    if unknown:
        raise RunError(
            f"--only names unknown candidates {unknown}; the recipe has: {', '.join(recipe.names)}"
        )
    answering = [c for c in recipe.candidates if not wanted or c.name in wanted]
    needed: list[AgentSettings] = []

    def add(cand: AgentSettings, chain: tuple[str, ...]) -> None:
        if cand.name in chain:
            raise RunError(f"candidates reference each other in a cycle: {' -> '.join((*chain, cand.name))}")
        if isinstance(cand.model, CandidateRef):
            add(recipe.candidate(cand.model.candidate), (*chain, cand.name))
        if cand not in needed:
            needed.append(cand)

    for cand in answering:
        add(cand, ())
    return answering, needed


def make_context(
    recipe: Recipe, console: Console, run_dir: Path | None = None, *, retrain: bool = False
) -> RunContext:
    return RunContext(
        task=recipe.task,
        labels=list(recipe.labels or []),
        base_model=recipe.base_model,
        recipe_dir=recipe.source_path.parent if recipe.source_path else Path.cwd(),
        recipe_name=recipe.name,
        console=console,
        run_dir=run_dir,
        corpus=recipe.corpus,
        embeddings=recipe.embeddings,
        chroma=recipe.chroma,
        ollama_host=recipe.ollama_host,
        retrain=retrain,
        synthesize=list(recipe.synthesize or []),
    )


def build_agents(settings: list[AgentSettings], ctx: RunContext) -> dict[str, Agent]:
    """Instantiate agents in dependency order and register them in the context."""
    for cand in settings:
        cls = load_agent_class(cand.agent)
        ctx.agents[cand.name] = cls(cand, ctx)
    return {c.name: ctx.agents[c.name] for c in settings}


@contextmanager
def _stage(timings: dict[str, float], name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)


def _answer_rows(agent: Agent, batch: list[Question]) -> list[dict[str, Any]]:
    try:
        answers = agent.answer(batch)
        if len(answers) != len(batch):
            raise RuntimeError(f"agent returned {len(answers)} answers for {len(batch)} questions")
    except Exception as exc:  # failures are data: one broken candidate never sinks the comparison
        from bakeoff.core import Answer

        answers = [Answer(question_id=q.id, text="", error=f"{type(exc).__name__}: {exc}") for q in batch]
    rows = []
    for q, a in zip(batch, answers, strict=True):
        row = a.to_dict()
        text = row.pop("text")
        rows.append(
            {
                "question_id": q.id,
                "question": q.question,
                "reference": q.reference,
                "answer": text,
                **{k: v for k, v in row.items() if k != "question_id"},
            }
        )
    return rows


def run_recipe(
    recipe: Recipe,
    *,
    recipe_text: str,
    runs_dir: Path,
    only: Iterable[str] | None = None,
    console: Console | None = None,
    resume: Path | None = None,
    retrain: bool = False,
) -> Path:
    """Run a validated recipe and return the run folder.

    With ``resume`` (an unfinished run folder of this recipe), answers already on disk are reused batch by
    batch — batches have fixed boundaries, so greedy answers equal an uninterrupted run's — and only the
    missing work is done.

    Raises:
        RunError: bad ``--only`` or unreadable evaluation data (before any run folder is made).
    """
    console = console or Console()
    answering, needed = select_candidates(recipe, only)
    from bakeoff.questions import DataError
    from bakeoff.synth.jobs import SynthError
    from bakeoff.synth.outputs import resolve_data_path

    synth_started = time.perf_counter()
    synthesized = []
    if recipe.synthesize:  # data the recipe writes with a model; finished units are skipped
        from bakeoff.synth.run import run_jobs

        try:
            synthesized = run_jobs(recipe, console=console)
        except SynthError as exc:
            raise RunError(str(exc)) from None
    synth_s = round(time.perf_counter() - synth_started, 3)
    try:
        questions = load_questions(
            resolve_data_path(recipe, recipe.eval.questions),
            task=recipe.task,
            labels=recipe.labels,
            limit=recipe.eval.limit,
        )
    except (DataError, SynthError) as exc:
        raise RunError(str(exc)) from None

    done: dict[tuple[str, str], dict[str, Any]] = {}
    if resume is not None:
        from bakeoff.run.store import RunStoreError, read_answers

        try:
            writer = RunWriter.reopen(resume)
        except RunStoreError as exc:
            raise RunError(str(exc)) from None
        done = {(r["candidate"], r["question_id"]): r for r in read_answers(resume) if not r.get("error")}
        console.print(f"resuming {writer.path.name}: {len(done)} answers already on disk are kept")
    else:
        writer = RunWriter.create(
            runs_dir,
            recipe.name,
            recipe_text,
            recipe_path=str(recipe.source_path) if recipe.source_path else None,
            task=recipe.task,
            n_questions=len(questions),
            answering=[c.name for c in answering],
        )
    timings: dict[str, float] = writer.manifest["timings_s"]
    if synthesized:
        timings["synthesize"] = synth_s
        writer.manifest["synthesize"] = {s.name: s.report.get("totals", {}) for s in synthesized}
    console.print(
        f"[bold]bakeoff[/] {recipe.name}: {len(answering)} candidate(s) × {len(questions)} questions "
        f"→ {writer.path}",
        soft_wrap=True,
    )
    try:
        ctx = make_context(recipe, console, writer.path, retrain=retrain)
        with _stage(timings, "prepare"):
            agents = build_agents(needed, ctx)
            prepare_s: dict[str, float] = {}  # per candidate: indexing (rag), training (finetuned)
            for cand in needed:
                with _stage(prepare_s, cand.name):
                    agents[cand.name].prepare()
            writer.manifest["prepare_s"] = prepare_s
            writer.manifest.update(ctx.manifest)
        if any(getattr(c, "ollama_registration", None) for c in needed):
            from bakeoff.serving.register import register_from_recipe

            with _stage(timings, "register"):
                writer.manifest["ollama"] = register_from_recipe(needed, ctx)
                writer.save_manifest()
        answers: dict[str, list[dict[str, Any]]] = {}
        with _stage(timings, "answer"), progress_bar(console) as bar:
            for cand in answering:
                agent = agents[cand.name]
                task = bar.add_task(f"answer {cand.name}", total=len(questions))
                t0 = time.perf_counter()
                rows: list[dict[str, Any]] = []
                step = cand.generation.batch_size
                for start in range(0, len(questions), step):
                    batch = questions[start : start + step]
                    kept = [done.get((cand.name, q.id)) for q in batch]
                    if all(kept):
                        rows.extend(kept)  # finished before an interruption
                    else:
                        new = _answer_rows(agent, batch)
                        writer.append_answers(cand.name, new)
                        rows.extend(new)
                    bar.advance(task, len(batch))
                answers[cand.name] = rows
                writer.manifest["candidates"][cand.name] = {
                    "agent": cand.agent,
                    "model": str(cand.model or recipe.base_model),
                    "answer_s": round(time.perf_counter() - t0, 3),
                    "errors": sum(1 for r in rows if r.get("error")),
                    "truncated_answers": sum(1 for r in rows if r.get("truncated")),
                    "truncated_prompts": sum(1 for r in rows if r.get("prompt_truncated")),
                    **agent.describe(),
                }
                writer.save_manifest()
        with _stage(timings, "score"), progress_bar(console) as bar:
            from bakeoff.eval.scoring import ScoringSettings, score_answers

            task = bar.add_task("score", total=sum(len(v) for v in answers.values()))
            scores = score_answers(
                questions,
                answers,
                ScoringSettings.from_recipe(recipe),
                retrieval_k={
                    c.name: agents[c.name].retrieval_k for c in answering if agents[c.name].retrieval_k
                },
                progress=lambda n: bar.advance(task, n),
            )
        writer.write_scores(scores)
        writer.manifest["notes"] = ctx.notes
        writer.finish("complete")
    except KeyboardInterrupt:
        writer.finish("failed", "interrupted by the user (Ctrl-C)")
        raise
    except Exception as exc:
        writer.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    return writer.path
