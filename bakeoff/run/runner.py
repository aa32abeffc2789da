"""``bakeoff run``: load → prepare (index, train) → register → answer → score → write, as a straight line.

:func:`run_recipe` reads as those stages, each a small function below it. Agents see their run through a
:class:`~bakeoff.run.context.CandidateContext` and their questions as :class:`~bakeoff.core.Query` (no
reference); the runner keeps the full :class:`~bakeoff.core.Question` for scoring.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bakeoff.agents.base import Agent, AgentSettings, Registrable, Retriever, Servable, load_agent_class
from bakeoff.agents.prompts import parse_label
from bakeoff.core import Answer, Question
from bakeoff.errors import BakeoffError
from bakeoff.models.refs import CandidateRef
from bakeoff.progress import progress_bar
from bakeoff.questions import load_questions
from bakeoff.recipe.schema import Recipe
from bakeoff.run.context import RunContext
from bakeoff.run.first_results import phases, print_first_results
from bakeoff.run.gpu import peak_gpu_gb, reset_gpu_peak
from bakeoff.run.store import RunWriter

if TYPE_CHECKING:
    from bakeoff.run.documents.scores import Scores

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
    """Instantiate agents in dependency order (each with its own view of the run) and register them in the
    context."""
    for cand in settings:
        cls = load_agent_class(cand.agent)
        ctx.agents[cand.name] = cls(cand, ctx.for_candidate(cand.name))
    return {c.name: ctx.agents[c.name] for c in settings}


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
    missing work is done. Candidates that train nothing are prepared and answered first, and their scores
    printed (:mod:`bakeoff.run.first_results`), before a fine-tune trains.

    Raises:
        RunError: bad ``--only`` or unreadable evaluation data (before any run folder is made).
    """
    console = console or Console()
    answering, needed = select_candidates(recipe, only)
    synthesized, synth_s = _synthesize(recipe, console)
    questions, question_notes = _load_eval_questions(recipe)
    for note in question_notes:
        console.print(f"[yellow]warning:[/] {note}", soft_wrap=True, markup=True)
    writer, done = _open_run(recipe, recipe_text, runs_dir, resume, questions, answering, console)
    if synthesized:
        writer.manifest["timings_s"]["synthesize"] = synth_s
        writer.manifest["synthesize"] = {s.name: s.report.get("totals", {}) for s in synthesized}
    console.print(
        f"[bold]bakeoff[/] {recipe.name}: {len(answering)} candidate(s) × {len(questions)} questions "
        f"→ {writer.path}",
        soft_wrap=True,
    )
    try:
        ctx = make_context(recipe, console, writer.path, retrain=retrain)
        agents: dict[str, Agent] = {}
        answers: dict[str, list[dict[str, Any]]] = {}
        steps = phases(needed)  # what trains nothing first, so its scores show before a fine-tune trains
        for n, phase in enumerate(steps):
            prepared = _prepare(phase, ctx, writer)
            agents.update(prepared)
            _register(prepared, ctx, writer)
            t0 = time.perf_counter()
            asking = [agents[c.name] for c in answering if c.name in prepared]
            answers.update(_answer(asking, questions, ctx, writer, done))
            if n + 1 < len(steps) and answers:
                with _stage(writer.manifest["timings_s"], "first_results"):
                    print_first_results(
                        recipe,
                        questions,
                        answers,
                        answer_s=time.perf_counter() - t0,
                        later=steps[n + 1],
                        later_answering=sum(1 for c in answering if c.name not in agents),
                        console=console,
                    )
        answering_agents = _serve(agents, [agents[c.name] for c in answering], ctx, writer)
        forms = [a for a in answering_agents if a.name not in answers]  # the served forms answer last
        if forms:
            answers.update(_answer(forms, questions, ctx, writer, done))
        answers = {a.name: answers[a.name] for a in answering_agents}  # the recipe's order, forms after theirs
        scores = _score(recipe, questions, answers, answering_agents, writer, console)
        _served_parity(recipe, scores, answers, writer)
        _retention(recipe, answering_agents, scores, writer, console)
        _decide(scores, writer)
        writer.write_scores(scores)
        writer.manifest["notes"] = question_notes + ctx.notes
        _finish(writer, scores)
    except KeyboardInterrupt:
        writer.finish("failed", "interrupted by the user (Ctrl-C)")
        raise
    except Exception as exc:
        writer.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    return writer.path


def _finish(writer: RunWriter, scores: Scores) -> None:
    """Close the run: ``complete``, or ``partial``/``failed`` when candidates failed (every answer an error)."""
    from bakeoff.eval.failures import failure_sentences, run_status

    for name, error in scores.failed_candidates().items():
        writer.manifest["candidates"].setdefault(name, {})["failed"] = error
    writer.finish(run_status(scores), "; ".join(failure_sentences(scores)) or None)


@contextmanager
def _stage(timings: dict[str, float], name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t0, 3)


# -- load ---------------------------------------------------------------------------------------------------
def _synthesize(recipe: Recipe, console: Console) -> tuple[list[Any], float]:
    """Write the data the recipe synthesizes with a model (finished units are skipped); with its seconds."""
    if not recipe.synthesize:
        return [], 0.0
    from bakeoff.synth.jobs import SynthError
    from bakeoff.synth.run import run_jobs

    started = time.perf_counter()
    try:
        synthesized = run_jobs(recipe, console=console)
    except SynthError as exc:
        raise RunError(str(exc)) from None
    return synthesized, round(time.perf_counter() - started, 3)


def _load_eval_questions(recipe: Recipe) -> tuple[list[Question], list[str]]:
    """The evaluation questions, and a note for each one cut to its maximum length."""
    from bakeoff.questions import DataError
    from bakeoff.synth.jobs import SynthError
    from bakeoff.synth.outputs import resolve_data_path

    notes: list[str] = []
    try:
        if recipe.eval.retention is not None:  # a malformed retention set fails now, not after answering
            load_questions(recipe.eval.retention, task="qa")
        questions = load_questions(
            resolve_data_path(recipe, recipe.eval.questions),
            task=recipe.task,
            labels=recipe.labels,
            limit=recipe.eval.limit,
            notes=notes,
        )
    except (DataError, SynthError) as exc:
        raise RunError(str(exc)) from None
    from bakeoff.eval.by_source import missing_slice_fields

    problem = missing_slice_fields(questions, recipe.eval.slice_by)
    if problem:
        raise RunError(problem)
    return questions, notes


def _open_run(
    recipe: Recipe,
    recipe_text: str,
    runs_dir: Path,
    resume: Path | None,
    questions: list[Question],
    answering: list[AgentSettings],
    console: Console,
) -> tuple[RunWriter, dict[tuple[str, str], dict[str, Any]]]:
    """A new run folder, or the reopened ``resume`` folder with the answers it already holds (by candidate and
    question id; failed answers are asked again)."""
    if resume is None:
        writer = RunWriter.create(
            runs_dir,
            recipe.name,
            recipe_text,
            recipe_path=str(recipe.source_path) if recipe.source_path else None,
            task=recipe.task,
            n_questions=len(questions),
            answering=[c.name for c in answering],
        )
        return writer, {}
    from bakeoff.run.store import RunStoreError, read_answers

    try:
        writer = RunWriter.reopen(resume)
    except RunStoreError as exc:
        raise RunError(str(exc)) from None
    done = {(r["candidate"], r["question_id"]): r for r in read_answers(resume) if not r.get("error")}
    console.print(f"resuming {writer.path.name}: {len(done)} answers already on disk are kept")
    return writer, done


# -- prepare (index, train) and register -------------------------------------------------------------------
def _prepare(needed: list[AgentSettings], ctx: RunContext, writer: RunWriter) -> dict[str, Agent]:
    """Build every needed agent and prepare it (indexing for rag, training for finetuned), dependencies
    first."""
    with _stage(writer.manifest["timings_s"], "prepare"):
        agents = build_agents(needed, ctx)
        prepare_s: dict[str, float] = {}
        for cand in needed:
            with _stage(prepare_s, cand.name):
                agents[cand.name].prepare()
        writer.manifest.setdefault("prepare_s", {}).update(prepare_s)
        writer.manifest.update(ctx.manifest)
    return agents


def _register(agents: dict[str, Agent], ctx: RunContext, writer: RunWriter) -> None:
    """Register the prepared models that their agents ask to have registered (:class:`Registrable`)."""
    wanted = [a for a in agents.values() if isinstance(a, Registrable) and a.registration() is not None]
    if not wanted:
        return
    from bakeoff.serving.register import register_candidates

    with _stage(writer.manifest["timings_s"], "register"):
        writer.manifest["ollama"] = register_candidates(wanted, ctx)
        writer.save_manifest()


def _serve(agents: dict[str, Agent], answering: list[Agent], ctx: RunContext, writer: RunWriter) -> list[Agent]:
    """The answering agents plus the served forms their ``serve:`` asks for (:class:`Servable`), each right
    after its candidate."""
    if not any(isinstance(a, Servable) and a.served_forms() is not None for a in answering):
        return answering
    from bakeoff.run.serve import serve_forms, with_served

    with _stage(writer.manifest["timings_s"], "serve"):
        served, facts = serve_forms({a.name: a for a in answering}, ctx)
    if facts:
        writer.manifest["served"] = facts
        writer.save_manifest()
    return with_served(answering, served)


def _served_parity(recipe: Recipe, scores: Scores, answers: dict[str, Any], writer: RunWriter) -> None:
    """Each served form's agreement and paired difference with its candidate, into scores and manifest."""
    if not writer.manifest.get("served"):
        return
    from bakeoff.run.serve import add_parity

    add_parity(recipe, scores, answers, writer.manifest["served"])


# -- answer -------------------------------------------------------------------------------------------------
def _answer(
    agents: list[Agent],
    questions: list[Question],
    ctx: RunContext,
    writer: RunWriter,
    done: dict[tuple[str, str], dict[str, Any]],
) -> dict[str, list[dict[str, Any]]]:
    """Every answering candidate answers every question, batch by batch; each batch is on disk before the next
    is asked, and a batch already on disk (``done``) is kept."""
    labels = ctx.labels if ctx.task == "classification" else None
    answers: dict[str, list[dict[str, Any]]] = {}
    with _stage(writer.manifest["timings_s"], "answer"), progress_bar(ctx.console) as bar:
        for agent in agents:
            task = bar.add_task(f"answer {agent.name}", total=len(questions))
            reset_gpu_peak()
            t0 = time.perf_counter()
            rows: list[dict[str, Any]] = []
            step = agent.settings.generation.batch_size
            for start in range(0, len(questions), step):
                batch = questions[start : start + step]
                kept = [done.get((agent.name, q.id)) for q in batch]
                if all(kept):
                    rows.extend(kept)  # finished before an interruption
                else:
                    new = _answer_rows(agent, batch, labels)
                    writer.append_answers(agent.name, new)
                    rows.extend(new)
                bar.advance(task, len(batch))
            answers[agent.name] = rows
            writer.manifest["candidates"][agent.name] = _candidate_facts(
                agent, rows, time.perf_counter() - t0, ctx
            )
            if (peak := peak_gpu_gb()) is not None:
                writer.manifest["candidates"][agent.name]["peak_gpu_memory_gb"] = peak
            writer.save_manifest()
    return answers


def _answer_rows(agent: Agent, batch: list[Question], labels: Sequence[str] | None) -> list[dict[str, Any]]:
    """One batch of answers as answers.jsonl rows; with ``labels`` (classification), the label read from each
    reply whose agent did not set one. A failure of the agent is every answer's ``error``."""
    try:
        answers = agent.answer([q.query for q in batch])
        if len(answers) != len(batch):
            raise RuntimeError(f"agent returned {len(answers)} answers for {len(batch)} questions")
        if labels is not None:
            _read_labels(answers, labels, json_mode=agent.label_format() == "json")
    except Exception as exc:  # failures are data: one broken candidate never sinks the comparison
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


def _read_labels(answers: list[Answer], labels: Sequence[str], *, json_mode: bool) -> None:
    """Classification: the label each answer's text names, for every answer without a label or an error."""
    for answer in answers:
        if answer.label is None and answer.error is None:
            answer.label = parse_label(answer.text, labels, json_mode=json_mode)


def _candidate_facts(
    agent: Agent, rows: list[dict[str, Any]], seconds: float, ctx: RunContext
) -> dict[str, Any]:
    """The manifest's entry for one answering candidate."""
    return {
        "agent": agent.settings.agent,
        "model": str(agent.settings.model or ctx.base_model),
        "answer_s": round(seconds, 3),
        "errors": sum(1 for r in rows if r.get("error")),
        "truncated_answers": sum(1 for r in rows if r.get("truncated")),
        "truncated_prompts": sum(1 for r in rows if r.get("prompt_truncated")),
        **agent.describe(),
    }


# -- score --------------------------------------------------------------------------------------------------
def _score(
    recipe: Recipe,
    questions: list[Question],
    answers: dict[str, list[dict[str, Any]]],
    agents: list[Agent],
    writer: RunWriter,
    console: Console,
) -> Scores:
    """Score the answers with the recipe's evaluation settings; retrieving candidates also on their
    passages."""
    from bakeoff.eval.scoring import ScoringSettings, score_answers

    with _stage(writer.manifest["timings_s"], "score"), progress_bar(console) as bar:
        task = bar.add_task("score", total=sum(len(v) for v in answers.values()))
        return score_answers(
            questions,
            answers,
            ScoringSettings.from_recipe(recipe),
            retrieval_k={a.name: a.retrieval_k for a in agents if isinstance(a, Retriever)},
            progress=lambda n: bar.advance(task, n),
        )


def _retention(
    recipe: Recipe, agents: list[Agent], scores: Scores, writer: RunWriter, console: Console
) -> None:
    """The retention set (``eval.retention``): answered by every candidate and scored on its own."""
    if recipe.eval.retention is None:
        return
    from bakeoff.questions import DataError
    from bakeoff.run.retention import run_retention

    try:
        run_retention(recipe, agents, scores, writer.path, writer.manifest, console, _answer_rows)
    except DataError as exc:
        raise RunError(str(exc)) from None


def _decide(scores: Scores, writer: RunWriter) -> None:
    """Cost, power, fine-tune × RAG and the verdict (:mod:`bakeoff.eval.verdict`), from the run's facts."""
    from bakeoff.eval.verdict import decide

    with _stage(writer.manifest["timings_s"], "decide"):
        decide(scores, writer.manifest)
