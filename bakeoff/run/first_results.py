"""A first result early: the candidates that train nothing answer first, and their scores print before a
fine-tune trains.

A quickstart run spends most of its first minutes training the LoRA candidate; the prompt and RAG
candidates need none of that, so the runner prepares and answers them first (:func:`phases`), then prints
their reference-metric scores with an estimate of what is left (:func:`print_first_results`) while the
fine-tune is still to come. The final table, scored over every candidate, follows at the end of the run as
before; only the order of the work changes, never an answer (greedy answers do not depend on it).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bakeoff.models.refs import CandidateRef

if TYPE_CHECKING:
    from rich.console import Console

    from bakeoff.agents.base import AgentSettings
    from bakeoff.core import Question
    from bakeoff.recipe.schema import Recipe

__all__ = ["phases", "print_first_results"]


def _trains(cand: AgentSettings) -> bool:
    """Whether preparing the candidate may train (a ``train:`` block) or waits on another candidate."""
    return getattr(cand, "train", None) is not None or isinstance(cand.model, CandidateRef)


def phases(needed: Sequence[AgentSettings]) -> list[list[AgentSettings]]:
    """``needed`` (dependencies first) as the candidates that train nothing, then the rest; one phase when
    either group is empty. The order within each phase is the recipe's."""
    later = [c for c in needed if _trains(c)]
    first = [c for c in needed if not _trains(c)]
    return [first, later] if first and later else [list(needed)]


def print_first_results(
    recipe: Recipe,
    questions: list[Question],
    answers: dict[str, list[dict[str, Any]]],
    *,
    answer_s: float,
    later: Sequence[AgentSettings],
    later_answering: int,
    console: Console,
) -> None:
    """Score the answers so far on the recipe's metrics that need no judge and print them, with what is left.

    Args:
        answers: the first phase's rows by candidate.
        answer_s: seconds those answers took (the rate the estimate for the rest uses).
        later: the candidates still to prepare (their training prints its own progress and ETA).
        later_answering: how many of them answer.
    """
    from bakeoff.eval import metric_class
    from bakeoff.eval.scoring import ScoringSettings, metric_names, score_answers
    from bakeoff.eval.table import comparison_table

    settings = ScoringSettings.from_recipe(recipe)
    names, headline, _ = metric_names(settings, questions)
    cheap = [n for n in names if "judge" not in metric_class(n).needs]
    n_done = sum(len(rows) for rows in answers.values())
    per_answer = answer_s / max(1, n_done)
    rest = later_answering * len(questions)
    eta = f"then {rest} answers, about {_duration(per_answer * rest)} at this run's rate so far"
    training = [c.name for c in later if getattr(c, "train", None) is not None]
    todo = f"still to come: {', '.join(c.name for c in later)}"
    if training:
        todo += f" (training {', '.join(training)} first: its bar shows an ETA, no time when cached)"
    if cheap:
        settings = dataclasses.replace(
            settings, metrics=cheap, headline=headline if headline in cheap else None, judge=None
        )
        scores = score_answers(questions, answers, settings)
        judged = [n for n in names if n not in cheap]
        title = "first results" + (f" (judged metrics {', '.join(judged)} come at the end)" if judged else "")
        console.print(comparison_table(scores, title=title, width=console.width))
    console.print(f"{todo}; {eta}", soft_wrap=True)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
