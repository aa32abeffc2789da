"""Retention: what fine-tuning broke. A second question set of general questions the base model answers
(``eval.retention``) is answered by every candidate and scored on its own; each candidate is compared with the
*base* candidate (prompt-only on the base model) question by question, and a significant loss becomes a
sentence for the verdict: ``lora: −0.12 [−0.18, −0.06] on retention``.

Only reference metrics are used on the retention set (no judge, no retrieval: general questions have no
supporting passage in the corpus); the loss is tested on the run's headline when it is one of them, else on
the first of them. Paired permutation test per candidate, Holm-corrected over the candidates.

``scores.json`` layout (:class:`~bakeoff.run.documents.analysis.Retention`)::

    "retention": {"questions": "data/general-qa.jsonl", "n_questions": 20, "metric": "token_f1",
                  "metrics": [...], "base": "zero-shot", "higher_is_better": true, "alpha": 0.05,
                  "candidates": {"lora": {"mean": 0.31, "n": 20, "ci": [0.2, 0.4]}, ...},
                  "per_answer": {"lora": {"g01": {"token_f1": 0.5}, ...}}, "errors": {"lora": 0},
                  "comparisons": [{"candidate": "lora", "base": "zero-shot", "delta": -0.12, "ci": [...],
                                   "p": 0.001, "p_holm": 0.002, "significant": true, "lost": true}]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from bakeoff.core import Question
from bakeoff.eval.formatting import number
from bakeoff.run.documents.analysis import Retention, RetentionLoss, SliceCell
from bakeoff.run.documents.scores import Scores

__all__ = ["base_candidate", "retention_metrics", "retention_sentences", "retention_table", "score_retention"]

Row = dict[str, Any]


def base_candidate(facts: Mapping[str, Mapping[str, Any]], base_model: str) -> str | None:
    """The candidate retention losses are measured against: the first prompt-only (``fewshot``) candidate on
    the base model; else the first candidate on the base model that is not fine-tuned; ``None`` if none.

    Args:
        facts: candidate -> its manifest facts (``agent``, ``model``), in recipe order.
        base_model: the recipe's base model reference.
    """
    on_base = [n for n, f in facts.items() if str(f.get("model")) == str(base_model)]
    for name in on_base:
        if facts[name].get("agent") == "fewshot":
            return name
    for name in on_base:
        if facts[name].get("agent") != "finetuned":
            return name
    return None


def retention_metrics(names: Sequence[str], headline: str | None) -> tuple[list[str], str | None]:
    """The metrics a retention set is scored with (those of ``names`` that need only the answer and the
    reference, or embeddings, and have per-answer values) and the one losses are tested on."""
    from bakeoff.eval import metric_class

    usable = [
        n for n in names if set(metric_class(n).needs) <= {"embeddings"} and not metric_class(n).corpus_level
    ]
    if not usable:
        return ["token_f1"], "token_f1"
    return usable, headline if headline in usable else usable[0]


def score_retention(
    questions: Sequence[Question],
    answers: Mapping[str, list[Row]],
    settings: Any,
    *,
    headline: str | None,
    base: str | None,
    path: str | None = None,
) -> Retention:
    """Score the retention answers and test each candidate against ``base``.

    Args:
        questions: the retention set.
        answers: candidate -> its answer rows on the retention set.
        settings: the run's :class:`~bakeoff.eval.scoring.ScoringSettings` (metrics, statistics).
        headline: the run's headline metric (tested when it suits the retention set).
        base: the base candidate (``None``: scores only, no losses).
        path: the retention file, for the record.
    """
    from bakeoff.eval import DEFAULT_METRICS, metric_class
    from bakeoff.eval.scoring import score_answers
    from bakeoff.eval.settings import StatisticsSpec
    from bakeoff.eval.stats import holm, paired_comparison

    names, metric = retention_metrics(settings.metrics or DEFAULT_METRICS["qa"], headline)
    own = replace(settings, task="qa", metrics=tuple(names), headline=metric, judge=None, slice_by=())
    scored = score_answers(questions, dict(answers), own)
    spec = settings.statistics or StatisticsSpec()
    up = bool(getattr(metric_class(metric), "higher_is_better", True))
    out = Retention(
        questions=path,
        n_questions=len(questions),
        metric=metric,
        metrics=names,
        base=base if base in scored.candidates else None,
        per_answer=scored.per_answer,
        errors={c: s.errors for c, s in scored.candidates.items()},
        higher_is_better=up,
        alpha=spec.alpha,
    )
    # assigned whole: a document writes only the fields it was given (a mutated default stays unset)
    out.candidates = {
        cand: SliceCell(
            mean=scored.entry(cand, metric).mean,
            n=scored.entry(cand, metric).n,
            ci=scored.entry(cand, metric).ci,
        )
        for cand in scored.candidates
    }
    if out.base is None:
        return out
    losses = []
    for cand in scored.candidates:
        if cand == out.base:
            continue
        mine, theirs = scored.per_answer[cand], scored.per_answer[out.base]
        shared = [
            q for q in mine if mine[q].get(metric) is not None and theirs.get(q, {}).get(metric) is not None
        ]
        if not shared:
            continue
        result = paired_comparison(
            [mine[q][metric] for q in shared],
            [theirs[q][metric] for q in shared],
            resamples=spec.resamples,
            permutations=spec.permutations,
            confidence=spec.confidence,
            seed=spec.seed,
        )
        losses.append(
            RetentionLoss(
                candidate=cand,
                base=out.base,
                n=result["n"],
                mean=result["mean_a"],
                base_mean=result["mean_b"],
                delta=result["delta"],
                ci=result["ci"],
                p=result["p"],
            )
        )
    for loss, p_holm in zip(losses, holm([x.p for x in losses]), strict=True):
        loss.p_holm = p_holm
        loss.significant = p_holm < spec.alpha
        loss.lost = loss.significant and (loss.delta < 0 if up else loss.delta > 0)
    out.comparisons = losses
    return out


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def retention_sentences(scores: Scores | Mapping[str, Any]) -> list[str]:
    """One sentence per candidate significantly worse than the base candidate on the retention set, e.g.
    ``"lora: −0.12 [−0.18, −0.06] on retention (token_f1 vs zero-shot, p_holm 0.003)"``; empty when nothing
    was lost (or the run has no retention set)."""
    retention = Scores.of(scores).retention
    if retention is None:
        return []
    out = []
    for loss in retention.comparisons:
        if not loss.lost:
            continue
        ci = f" [{_signed(loss.ci[0])}, {_signed(loss.ci[1])}]" if loss.ci else ""
        out.append(
            f"{loss.candidate}: {_signed(loss.delta)}{ci} on retention "
            f"({retention.metric} vs {loss.base}, p_holm {loss.p_holm:.3g})"
        )
    return out


def retention_table(scores: Scores | Mapping[str, Any]):
    """A rich Table of the retention set: each candidate's mean, its difference from the base candidate with
    the paired interval, and a mark on significant losses (``None`` without a retention set)."""
    from rich.table import Table

    from bakeoff.eval.formatting import interval

    retention = Scores.of(scores).retention
    if retention is None:
        return None
    table = Table(
        title=f"retention · {retention.metric} on {retention.n_questions} general questions",
        title_justify="left",
    )
    for col in ("candidate", "mean", "Δ vs base", "CI", "p_holm", ""):
        table.add_column(col, justify="left" if col in ("candidate", "") else "right")
    by_cand = {loss.candidate: loss for loss in retention.comparisons}
    for cand, cell in retention.candidates.items():
        loss = by_cand.get(cand)
        if cand == retention.base:
            table.add_row(cand, number(cell.mean), "", "", "", "[dim]base[/]")
        elif loss is None:
            table.add_row(cand, number(cell.mean), "—", "", "", "")
        else:
            mark = (
                "[bold red]✘ lost[/]"
                if loss.lost
                else "[green]✔ gained[/]"
                if loss.significant
                else "[dim]n.s.[/]"
            )
            table.add_row(
                cand,
                number(cell.mean),
                f"{loss.delta:+.3f}",
                interval(loss.ci, 3),
                f"{loss.p_holm:.4f}",
                mark,
            )
    table.caption = (
        f"paired permutation test against {retention.base or 'no base candidate'}, Holm-corrected; "
        f"✘ = significantly worse (p_holm < {retention.alpha})"
    )
    return table
