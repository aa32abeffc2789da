"""The run's retention stage (``eval.retention``): every answering candidate answers the second question set,
batch by batch, into ``retention-answers.jsonl`` of the run folder; the answers are scored on their own
(:func:`bakeoff.eval.retention.score_retention`) into ``scores.json``'s ``retention`` section.

Kept apart from ``answers.jsonl`` so that every reader of the main answers (re-scoring, the console, the
arena) sees only the evaluation set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.core import Question
from bakeoff.io import append_jsonl
from bakeoff.progress import progress_bar

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.agents.base import Agent
    from bakeoff.recipe.schema import Recipe
    from bakeoff.run.documents.scores import Scores

__all__ = ["RETENTION_ANSWERS", "rescore_retention", "run_retention"]

RETENTION_ANSWERS = "retention-answers.jsonl"
"""The retention set's answers in a run folder (same rows as ``answers.jsonl``)."""

AnswerRows = Callable[[Any, list[Question], Sequence[str] | None], list[dict[str, Any]]]


def run_retention(
    recipe: Recipe,
    agents: Sequence[Agent],
    scores: Scores,
    run_dir: Path,
    manifest: dict[str, Any],
    console: Console,
    answer_rows: AnswerRows,
) -> None:
    """Answer and score the retention set; the result goes to ``scores.retention`` and the seconds to
    ``manifest["timings_s"]["retention"]``.

    Args:
        recipe: the recipe (``eval.retention``, the scoring settings, the base model).
        agents: the answering candidates, prepared.
        scores: the run's scores (its headline is the metric losses are tested on).
        run_dir: the run folder.
        manifest: the run's manifest (candidate facts pick the base candidate).
        console: for the progress bar.
        answer_rows: the runner's batch answerer (an agent and a batch → answer rows; failures as data).

    Raises:
        bakeoff.questions.DataError: the retention file is malformed.
    """
    import time

    from bakeoff.eval.retention import base_candidate, score_retention
    from bakeoff.eval.scoring import ScoringSettings
    from bakeoff.questions import load_questions

    path = recipe.eval.retention
    if path is None:
        return
    t0 = time.perf_counter()
    questions = load_questions(path, task="qa")
    from bakeoff.io import cut_torn_tail, read_jsonl

    target = run_dir / RETENTION_ANSWERS
    if target.is_file():
        cut_torn_tail(target)
    # a resumed run keeps the batches already on disk (failed answers are asked again)
    done = {(r["candidate"], r["question_id"]): r for r in read_jsonl(target) if not r.get("error")}
    answers: dict[str, list[dict[str, Any]]] = {}
    with progress_bar(console) as bar:
        for agent in agents:
            task = bar.add_task(f"retention {agent.name}", total=len(questions))
            rows: list[dict[str, Any]] = []
            step = agent.settings.generation.batch_size
            for start in range(0, len(questions), step):
                batch = questions[start : start + step]
                kept = [done.get((agent.name, q.id)) for q in batch]
                if all(kept):
                    rows.extend({k: v for k, v in r.items() if k != "candidate"} for r in kept if r)
                else:
                    new = answer_rows(agent, batch, None)
                    append_jsonl(target, ({"candidate": agent.name, **r} for r in new))
                    rows.extend(new)
                bar.advance(task, len(batch))
            answers[agent.name] = rows
    base = base_candidate(manifest.get("candidates", {}), str(recipe.base_model))
    scores.retention = score_retention(
        questions,
        answers,
        ScoringSettings.from_recipe(recipe),
        headline=scores.headline,
        base=base,
        path=_shown(path, recipe),
    )
    manifest.setdefault("timings_s", {})["retention"] = round(time.perf_counter() - t0, 3)


def rescore_retention(run_dir: Path, recipe: Recipe, scores: Scores) -> None:
    """Score a finished run's retention answers again (``bakeoff score``) into ``scores.retention``; nothing
    when the run has no ``retention-answers.jsonl``. Questions are rebuilt from the answer rows."""
    from bakeoff.eval.retention import base_candidate, score_retention
    from bakeoff.eval.scoring import ScoringSettings
    from bakeoff.io import read_jsonl
    from bakeoff.run.documents.manifest import Manifest
    from bakeoff.run.store import by_candidate

    path = Path(run_dir) / RETENTION_ANSWERS
    if not path.is_file():
        return
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_jsonl(path):  # a resumed run appended the answers it asked again: the last one counts
        latest[(row["candidate"], row["question_id"])] = row
    answers, questions = by_candidate(list(latest.values()))
    manifest = Manifest.read(Path(run_dir) / "manifest.json")
    facts = {name: {"agent": c.agent, "model": c.model} for name, c in manifest.candidates.items()}
    scores.retention = score_retention(
        list(questions.values()),
        answers,
        ScoringSettings.from_recipe(recipe),
        headline=scores.headline,
        base=base_candidate(facts, str(recipe.base_model)),
        path=_shown(recipe.eval.retention, recipe) if recipe.eval.retention else RETENTION_ANSWERS,
    )


def _shown(path: Path, recipe: Recipe) -> str:
    """The retention file relative to the recipe's folder when it is below it, else as given."""
    base = recipe.source_path.parent if recipe.source_path else None
    try:
        return str(path.relative_to(base.resolve())) if base else str(path)
    except ValueError:
        return str(path)
