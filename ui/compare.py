"""The Compare page's logic, without Streamlit: candidates side by side (means with intervals, per label,
latency and tokens), runs merged, and every question with each candidate's answer, scores and contexts.

Reads :class:`~bakeoff.run.documents.scores.Scores` (a plain ``scores.json`` dict is accepted and validated) and
answer rows from ``answers.jsonl``; returns plain dicts and :class:`QuestionView` objects for ``st.dataframe``
and charts. A field an older or newer run does not have is shown as missing, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bakeoff.eval.formatting import mean_cell
from bakeoff.run.documents.base import finite
from bakeoff.run.documents.scores import MetricSummary, Scores
from bakeoff.run.store import RunInfo

__all__ = [
    "QuestionView",
    "aggregate_rows",
    "chart_rows",
    "classification_rows",
    "cost_rows",
    "disagreement",
    "filter_disagreements",
    "format_cell",
    "join_questions",
    "merge_runs",
    "metric_interval",
    "question_table",
    "verdict_rows",
]

ScoresLike = Scores | Mapping[str, Any]


# --- candidates side by side ---------------------------------------------------------------------------


def metric_interval(entry: MetricSummary | Mapping[str, Any] | None) -> tuple[float | None, float | None]:
    """The interval around a metric mean, if the scores carry one (several spellings are accepted)."""
    if isinstance(entry, Mapping):
        try:
            entry = MetricSummary.of(entry)
        except ValidationError:
            return None, None
    return entry.interval() if isinstance(entry, MetricSummary) else (None, None)


def merge_runs(runs: list[tuple[RunInfo, list[dict[str, Any]]]]) -> tuple[Scores, list[dict[str, Any]]]:
    """One scores document and one answer list for one run, or for several runs of the same recipe.

    With several runs each candidate is renamed ``name · run-id`` so the same candidate of two runs sits in
    two rows (and two columns of the per-question table).

    Args:
        runs: ``(run, its answer rows)`` pairs; runs without scores contribute their answers only.

    Returns:
        ``(scores, answers)``: the document, and rows in the format of ``answers.jsonl``.
    """
    if len(runs) == 1:
        info, answers = runs[0]
        return info.scores_document or Scores(metrics=[], candidates={}, per_answer={}), answers
    merged = Scores(metrics=[], candidates={}, per_answer={}, task=None)
    rows: list[dict[str, Any]] = []
    for info, answers in runs:
        scores = info.scores_document or Scores()
        merged.task = merged.task or scores.task
        merged.metrics.extend(m for m in scores.metrics if m not in merged.metrics)

        def label(name: str, run_id: str = info.run_id) -> str:
            return f"{name} · {run_id}"

        for name, cand in scores.candidates.items():
            merged.candidates[label(name)] = cand
        for name, per in scores.per_answer.items():
            merged.per_answer[label(name)] = per
        rows.extend({**row, "candidate": label(str(row.get("candidate")))} for row in answers)
        merged.n_questions = max(merged.n_questions or 0, scores.n_questions or 0)
    return merged, rows


def aggregate_rows(scores: ScoresLike) -> list[dict[str, Any]]:
    """Per candidate and metric: mean, interval and whether it is the best mean (one row per candidate).

    Keys per metric ``M``: ``M`` (mean), ``M_low``, ``M_high``, ``M_best``; plus ``candidate``, ``n``,
    ``errors``.
    """
    scores = Scores.of(scores)
    best = scores.best_per_metric()
    rows = []
    for name, cand in scores.candidates.items():
        row: dict[str, Any] = {"candidate": name, "n": cand.n, "errors": cand.errors}
        for metric in scores.metrics:
            entry = scores.entry(name, metric)
            row[metric] = finite(entry.mean)
            row[f"{metric}_low"], row[f"{metric}_high"] = entry.interval()
            row[f"{metric}_best"] = name in best.get(metric, set())
        rows.append(row)
    return rows


def format_cell(mean: float | None, low: float | None, high: float | None, best: bool) -> str:
    """``0.412 [0.35, 0.47] ★`` — how one mean is written in the comparison table."""
    return mean_cell(mean, (low, high), best=best)


def chart_rows(scores: ScoresLike) -> list[dict[str, Any]]:
    """Long-form rows for bar charts with whiskers: candidate, metric, mean, ci_low, ci_high."""
    scores = Scores.of(scores)
    out = []
    for row in aggregate_rows(scores):
        for metric in scores.metrics:
            if row[metric] is None:
                continue
            out.append(
                {
                    "candidate": row["candidate"],
                    "metric": metric,
                    "mean": row[metric],
                    "ci_low": row[f"{metric}_low"],
                    "ci_high": row[f"{metric}_high"],
                    "best": row[f"{metric}_best"],
                }
            )
    return out


def classification_rows(scores: ScoresLike) -> dict[str, list[dict[str, Any]]]:
    """Per candidate, one row per label: precision, recall, F1, support (classification runs only)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, cand in Scores.of(scores).candidates.items():
        report = cand.classification
        if report is None or not report.per_label:
            continue
        rows: list[dict[str, Any]] = [
            {
                "label": label,
                "precision": finite(v.precision),
                "recall": finite(v.recall),
                "f1": finite(v.f1),
                "support": v.support,
            }
            for label, v in report.per_label.items()
        ]
        rows.append({"label": "(unparsed answers)", "support": report.unparsed})
        out[name] = rows
    return out


def cost_rows(scores: ScoresLike) -> list[dict[str, Any]]:
    """Latency and tokens per candidate (what each answer cost)."""
    rows = []
    for name, cand in Scores.of(scores).candidates.items():
        n = cand.n or 0
        completion = cand.tokens.completion
        rows.append(
            {
                "candidate": name,
                "answers": n,
                "errors": cand.errors,
                "truncated": cand.truncated,
                "latency_mean_s": finite(cand.latency_s.mean),
                "latency_p50_s": finite(cand.latency_s.p50),
                "latency_p95_s": finite(cand.latency_s.p95),
                "prompt_tokens": cand.tokens.prompt,
                "completion_tokens": completion,
                "tokens_per_answer": round(completion / n, 1) if n else None,
                "training_s": cand.cost.training_s_original if cand.cost else None,
                "training_cached": cand.cost.training_cached if cand.cost else None,
                "peak_gpu_memory_gb": cand.cost.peak_gpu_memory_gb if cand.cost else None,
            }
        )
    return rows


def verdict_rows(scores: ScoresLike) -> list[tuple[str, str]]:
    """The verdict the Compare page shows first, as ``(label, text)`` lines (:func:`bakeoff.eval.verdict.
    verdict_lines`; empty for a run scored before verdicts)."""
    from bakeoff.eval.verdict import verdict_lines

    return [(label, _markdown_safe(text)) for label, text in verdict_lines(Scores.of(scores))]


def _markdown_safe(text: str) -> str:
    """Text shown through ``st.markdown``: candidate names with ``_``/``*`` stay literal, ``$`` is no LaTeX."""
    for char in ("\\", "*", "_", "$", "`"):
        text = text.replace(char, "\\" + char)
    return text


# --- per question -------------------------------------------------------------------------------------


@dataclass
class QuestionView:
    """One question with every candidate's answer, scores and (RAG) retrieved contexts."""

    id: str
    question: str
    reference: str
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


def join_questions(scores: ScoresLike, answers: list[dict[str, Any]]) -> list[QuestionView]:
    """Join answer rows with per-answer scores, one view per question (in first-seen order).

    Each ``view.answers[candidate]`` has ``answer``, ``error``, ``label``, ``contexts``, ``latency_s``,
    ``completion_tokens`` and ``scores`` (metric -> value or None).
    """
    per_answer = Scores.of(scores).per_answer
    views: dict[str, QuestionView] = {}
    for row in answers:
        qid = str(row.get("question_id", ""))
        cand = str(row.get("candidate", ""))
        view = views.get(qid)
        if view is None:
            view = views[qid] = QuestionView(
                qid, str(row.get("question") or ""), str(row.get("reference") or "")
            )
        contexts = row.get("contexts")
        view.answers[cand] = {
            "answer": row.get("answer") or "",
            "error": row.get("error"),
            "label": row.get("label"),
            "contexts": contexts if isinstance(contexts, list) else [],
            "latency_s": finite(row.get("latency_s")),
            "completion_tokens": row.get("completion_tokens"),
            "scores": dict((per_answer.get(cand) or {}).get(qid) or {}),
        }
    return list(views.values())


def _normalised(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .!?")


def disagreement(view: QuestionView, *, metric: str | None, task: str = "qa") -> float:
    """How much the candidates disagree on one question, 0 (agree) to 1.

    Classification: 1 when they predicted different labels. QA: the spread (max − min) of ``metric`` across
    candidates; without a metric value, 1 when their normalised answers differ.
    """
    answers = list(view.answers.values())
    if len(answers) < 2:
        return 0.0
    if task == "classification":
        return 1.0 if len({a.get("label") for a in answers}) > 1 else 0.0
    values = [finite(a["scores"].get(metric)) for a in answers] if metric else []
    values = [v for v in values if v is not None]
    if len(values) >= 2:
        return max(values) - min(values)
    return 1.0 if len({_normalised(a["answer"]) for a in answers}) > 1 else 0.0


def filter_disagreements(
    views: list[QuestionView], *, metric: str | None, task: str = "qa", threshold: float = 0.25
) -> list[QuestionView]:
    """Questions where the candidates disagree by at least ``threshold`` (see :func:`disagreement`)."""
    return [v for v in views if disagreement(v, metric=metric, task=task) >= threshold - 1e-12]


def question_table(
    views: list[QuestionView], candidates: list[str], *, metric: str | None, task: str = "qa"
) -> list[dict[str, Any]]:
    """Wide rows for the per-question table: id, question, reference, then each candidate's answer and score."""
    rows = []
    for view in views:
        row: dict[str, Any] = {"id": view.id, "question": view.question, "reference": view.reference}
        for cand in candidates:
            ans = view.answers.get(cand)
            if ans is None:
                row[cand] = None
                row[f"{cand} · {metric}"] = None
                continue
            text = ans["answer"] if not ans["error"] else f"(error) {ans['error']}"
            if task == "classification":
                text = f"{ans['label'] or '(unparsed)'} — {text}"
            row[cand] = text
            if metric:
                row[f"{cand} · {metric}"] = finite(ans["scores"].get(metric))
        row["disagreement"] = round(disagreement(view, metric=metric, task=task), 3)
        rows.append(row)
    return rows
