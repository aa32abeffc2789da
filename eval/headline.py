"""Which metric a run leads with (the *headline*), and why — recorded in ``scores.json``.

The paired tests, the verdict, error analysis and the reports all lead with one metric. A recipe may name it
(``eval.headline``). When it does not, the references decide for a QA run: short references ("France",
"1066") against answers that are correct but full sentences make ROUGE-L the wrong judge (a correct "The
duke in the battle of Hastings was William the Conqueror." scores 0.43 against "William the Conqueror"), so
when the median reference is at most :data:`SHORT_REFERENCE_TOKENS` tokens (SQuAD-normalised) the run leads
with ``token_recall``, otherwise with ``rougeL``. Five tokens: SQuAD's answers have a median of 2 and 90%
are under 6; a reference of a sentence or more (the bundled contract questions, summaries) is above it. A
recipe that lists ``eval.metrics`` leads with the first of them (its order is a choice), and the reason
says which metric its references would suggest.
Classification leads with the first listed per-answer metric, else ``accuracy``.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from bakeoff.eval import DEFAULT_HEADLINE, metric_class
from bakeoff.eval.metrics import normalize_answer

__all__ = ["SHORT_REFERENCE_TOKENS", "choose_headline"]

SHORT_REFERENCE_TOKENS = 5  # a median reference of at most this many normalised tokens is "short"


def choose_headline(
    task: str,
    names: Sequence[str],
    *,
    listed: bool,
    references: Sequence[str],
    headline: str | None = None,
) -> tuple[str, str]:
    """The headline metric and one sentence saying why.

    Args:
        task: ``qa`` or ``classification``.
        names: the metrics the run computes.
        listed: the recipe listed ``eval.metrics`` (else ``names`` are the task's defaults).
        references: the questions' reference answers.
        headline: the recipe's ``eval.headline``, if set.

    Raises:
        ValueError: ``headline`` is not among ``names``.
    """
    if headline is not None:
        if headline not in names:
            raise ValueError(f"headline metric {headline!r} is not among the metrics {list(names)}")
        return headline, "set by eval.headline"
    per_answer = [n for n in names if not metric_class(n).corpus_level]
    first = per_answer[0] if listed and per_answer else None
    if task != "qa":
        default = DEFAULT_HEADLINE.get(task, names[0])
        if first is not None:
            return first, "the first per-answer metric of eval.metrics"
        return (default, f"the {task} default") if default in names else (names[0], "the first metric")
    lengths = [len(normalize_answer(r).split()) for r in references] or [0]
    median = statistics.median(lengths)
    short = median <= SHORT_REFERENCE_TOKENS
    preferred = "token_recall" if short else "rougeL"
    words = f"median {median:g} token{'s' if median != 1 else ''}"
    why = (
        f"references are short ({words} <= {SHORT_REFERENCE_TOKENS}): token_recall credits a correct "
        "full-sentence answer that ROUGE-L marks down for its length"
        if short
        else f"references are long ({words} > {SHORT_REFERENCE_TOKENS}): ROUGE-L"
    )
    if first is not None:  # the recipe's own order decides; say what the references would suggest
        if first == preferred:
            return first, f"the first of eval.metrics; {why}"
        return first, (
            f"the first of eval.metrics; the references would suggest {preferred} ({why}): "
            f"set eval.headline: {preferred} to lead with it"
        )
    if preferred in names:
        return preferred, why
    return names[0], f"{why}, which is not computed; the first metric leads"
