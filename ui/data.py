"""What the console shows, computed without Streamlit: runs as table rows, comparisons, per-question joins,
disagreements, chart data and training curves.

Everything here takes plain data (a :class:`~bakeoff.run.store.RunInfo`, answer rows from ``answers.jsonl``, the
``scores.json`` document, files under ``<run>/training/``) and returns lists of plain dicts that a page hands to
``st.dataframe`` or a chart. Readers are defensive: a field that an older or newer run does not have is shown
as missing, never a crash.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bakeoff.io import read_jsonl
from bakeoff.run.store import RunInfo

__all__ = [
    "HEADLINE_METRICS",
    "QuestionView",
    "TrainingLog",
    "aggregate_rows",
    "chart_rows",
    "classification_rows",
    "cost_rows",
    "curve_rows",
    "disagreement",
    "filter_disagreements",
    "format_cell",
    "headline",
    "join_questions",
    "merge_runs",
    "metric_interval",
    "question_table",
    "read_training",
    "recipes_of",
    "run_key",
    "run_row",
    "runs_table",
    "selected_steps",
    "training_facts",
]

# The metric a run is summarised by on the Runs page: the first of these that the run scored.
HEADLINE_METRICS = (
    "macro_f1",
    "accuracy",
    "answer_correctness",
    "semantic_similarity",
    "token_f1",
    "rougeL",
)

# Where other producers may put a 95% interval for a metric mean (the first that is present wins).
_INTERVAL_PAIRS = (("ci_low", "ci_high"), ("ci95_low", "ci95_high"), ("low", "high"), ("lower", "upper"))
_INTERVAL_LISTS = ("ci", "ci95", "interval")


# --- runs ---------------------------------------------------------------------------------------------


def run_key(info: RunInfo) -> str:
    """``recipe/run-id``: how a run is named in the console (and in ``?run=`` links)."""
    return f"{info.recipe}/{info.run_id}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def headline(scores: dict[str, Any] | None) -> tuple[str, str, float] | None:
    """``(metric, best candidate, its mean)`` for the run's headline metric, or None without scores."""
    if not scores:
        return None
    metrics = [m for m in scores.get("metrics", []) if isinstance(m, str)]
    chosen = scores.get("headline") if scores.get("headline") in metrics else None  # the run's own choice
    chosen = chosen or next((m for m in HEADLINE_METRICS if m in metrics), metrics[0] if metrics else None)
    if chosen is None:
        return None
    best: tuple[str, float] | None = None
    for name, cand in (scores.get("candidates") or {}).items():
        value = _number(((cand or {}).get("metrics") or {}).get(chosen, {}).get("mean"))
        if value is not None and (best is None or value > best[1]):
            best = (name, value)
    return (chosen, best[0], best[1]) if best else None


def run_row(info: RunInfo) -> dict[str, Any]:
    """One Runs-page row: recipe, run, status, start time, duration, candidates, headline metric."""
    started = _parse_time(info.manifest.get("started_at"))
    ended = _parse_time(info.manifest.get("ended_at"))
    head = headline(info.scores)
    status = info.status
    if info.problem:
        status = "unreadable"
    return {
        "run": run_key(info),
        "recipe": info.recipe,
        "run_id": info.run_id,
        "status": status,
        "started": started.astimezone().strftime("%Y-%m-%d %H:%M") if started else "",
        "duration_s": round((ended - started).total_seconds(), 1) if started and ended else None,
        "candidates": ", ".join(info.candidates),
        "n_candidates": len(info.candidates),
        "questions": info.manifest.get("n_questions"),
        "metric": head[0] if head else "",
        "best": head[1] if head else "",
        "best_value": head[2] if head else None,
        "problem": info.problem or info.manifest.get("error") or "",
        "path": str(info.path),
    }


def runs_table(runs: list[RunInfo], recipes: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows for the Runs page, optionally only for some recipes (newest first, as given)."""
    return [run_row(r) for r in runs if not recipes or r.recipe in recipes]


def recipes_of(runs: list[RunInfo]) -> list[str]:
    """The recipe names that have runs, sorted."""
    return sorted({r.recipe for r in runs})


# --- comparing candidates ---------------------------------------------------------------------------


def metric_interval(entry: dict[str, Any] | None) -> tuple[float | None, float | None]:
    """The interval around a metric mean, if the scores carry one (several spellings are accepted)."""
    if not isinstance(entry, dict):
        return None, None
    for low_key, high_key in _INTERVAL_PAIRS:
        low, high = _number(entry.get(low_key)), _number(entry.get(high_key))
        if low is not None and high is not None:
            return low, high
    for key in _INTERVAL_LISTS:
        value = entry.get(key)
        if isinstance(value, list | tuple) and len(value) == 2:
            low, high = _number(value[0]), _number(value[1])
            if low is not None and high is not None:
                return low, high
        if isinstance(value, dict):
            low, high = metric_interval(value)
            if low is not None:
                return low, high
    return None, None


def merge_runs(
    runs: list[tuple[RunInfo, list[dict[str, Any]]]],
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One scores document and one answer list for one run, or for several runs of the same recipe.

    With several runs each candidate is renamed ``name · run-id`` so the same candidate of two runs sits in
    two rows (and two columns of the per-question table).

    Args:
        runs: ``(run, its answer rows)`` pairs; runs without scores contribute their answers only.

    Returns:
        ``(scores, answers)`` in the formats of ``scores.json`` and ``answers.jsonl``.
    """
    if len(runs) == 1:
        info, answers = runs[0]
        return info.scores or {"metrics": [], "candidates": {}, "per_answer": {}}, answers
    merged: dict[str, Any] = {"metrics": [], "candidates": {}, "per_answer": {}, "task": None}
    rows: list[dict[str, Any]] = []
    for info, answers in runs:
        scores = info.scores or {}
        merged["task"] = merged["task"] or scores.get("task")
        for metric in scores.get("metrics", []):
            if metric not in merged["metrics"]:
                merged["metrics"].append(metric)

        def label(name: str, run_id: str = info.run_id) -> str:
            return f"{name} · {run_id}"

        for name, cand in (scores.get("candidates") or {}).items():
            merged["candidates"][label(name)] = cand
        for name, per in (scores.get("per_answer") or {}).items():
            merged["per_answer"][label(name)] = per
        rows.extend({**row, "candidate": label(str(row.get("candidate")))} for row in answers)
        merged["n_questions"] = max(merged.get("n_questions") or 0, scores.get("n_questions") or 0)
    return merged, rows


def _best(scores: dict[str, Any]) -> dict[str, set[str]]:
    from bakeoff.eval.table import best_per_metric

    return best_per_metric(scores)


def aggregate_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Per candidate and metric: mean, interval and whether it is the best mean (one row per candidate).

    Keys per metric ``M``: ``M`` (mean), ``M_low``, ``M_high``, ``M_best``; plus ``candidate``, ``n``,
    ``errors``.
    """
    best = _best(scores)
    rows = []
    for name, cand in (scores.get("candidates") or {}).items():
        cand = cand or {}
        row: dict[str, Any] = {"candidate": name, "n": cand.get("n"), "errors": cand.get("errors", 0)}
        for metric in scores.get("metrics", []):
            entry = (cand.get("metrics") or {}).get(metric) or {}
            low, high = metric_interval(entry)
            row[metric] = _number(entry.get("mean"))
            row[f"{metric}_low"], row[f"{metric}_high"] = low, high
            row[f"{metric}_best"] = name in best.get(metric, set())
        rows.append(row)
    return rows


def format_cell(mean: float | None, low: float | None, high: float | None, best: bool) -> str:
    """``0.412 [0.35, 0.47] ★`` — how one mean is written in the comparison table."""
    if mean is None:
        return "—"
    text = f"{mean:.3f}"
    if low is not None and high is not None:
        text += f" [{low:.2f}, {high:.2f}]"
    return text + (" ★" if best else "")


def chart_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Long-form rows for bar charts with whiskers: candidate, metric, mean, ci_low, ci_high."""
    out = []
    for row in aggregate_rows(scores):
        for metric in scores.get("metrics", []):
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


def classification_rows(scores: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per candidate, one row per label: precision, recall, F1, support (classification runs only)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for name, cand in (scores.get("candidates") or {}).items():
        report = (cand or {}).get("classification") or {}
        rows = [
            {
                "label": label,
                "precision": _number(v.get("precision")),
                "recall": _number(v.get("recall")),
                "f1": _number(v.get("f1")),
                "support": v.get("support"),
            }
            for label, v in (report.get("per_label") or {}).items()
            if isinstance(v, dict)
        ]
        if rows:
            rows.append({"label": "(unparsed answers)", "support": report.get("unparsed", 0)})
            out[name] = rows
    return out


def cost_rows(scores: dict[str, Any]) -> list[dict[str, Any]]:
    """Latency and tokens per candidate (what each answer cost)."""
    rows = []
    for name, cand in (scores.get("candidates") or {}).items():
        cand = cand or {}
        latency = cand.get("latency_s") or {}
        tokens = cand.get("tokens") or {}
        n = cand.get("n") or 0
        completion = tokens.get("completion")
        rows.append(
            {
                "candidate": name,
                "answers": n,
                "errors": cand.get("errors", 0),
                "truncated": cand.get("truncated", 0),
                "latency_mean_s": _number(latency.get("mean")),
                "latency_p50_s": _number(latency.get("p50")),
                "latency_p95_s": _number(latency.get("p95")),
                "prompt_tokens": tokens.get("prompt"),
                "completion_tokens": completion,
                "tokens_per_answer": round(completion / n, 1) if n and isinstance(completion, int) else None,
            }
        )
    return rows


# --- per question -------------------------------------------------------------------------------------


@dataclass
class QuestionView:
    """One question with every candidate's answer, scores and (RAG) retrieved contexts."""

    id: str
    question: str
    reference: str
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


def join_questions(scores: dict[str, Any], answers: list[dict[str, Any]]) -> list[QuestionView]:
    """Join answer rows with per-answer scores, one view per question (in first-seen order).

    Each ``view.answers[candidate]`` has ``answer``, ``error``, ``label``, ``contexts``, ``latency_s``,
    ``completion_tokens`` and ``scores`` (metric -> value or None).
    """
    per_answer = scores.get("per_answer") or {}
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
            "latency_s": _number(row.get("latency_s")),
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
    values = [_number(a["scores"].get(metric)) for a in answers] if metric else []
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
                row[f"{cand} · {metric}"] = _number(ans["scores"].get(metric))
        row["disagreement"] = round(disagreement(view, metric=metric, task=task), 3)
        rows.append(row)
    return rows


# --- training -------------------------------------------------------------------------------------------


@dataclass
class TrainingLog:
    """A fine-tuned candidate's ``training/<candidate>/`` folder as read back."""

    candidate: str
    points: list[dict[str, Any]] = field(default_factory=list)  # metrics.jsonl lines
    summary: dict[str, Any] = field(default_factory=dict)  # summary.json
    problem: str | None = None


def read_training(run_path: Path) -> dict[str, TrainingLog]:
    """Every ``<run>/training/<candidate>/`` with ``metrics.jsonl`` and/or ``summary.json``, by candidate."""
    root = Path(run_path) / "training"
    out: dict[str, TrainingLog] = {}
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        metrics, summary = folder / "metrics.jsonl", folder / "summary.json"
        if not metrics.is_file() and not summary.is_file():
            continue
        log = TrainingLog(folder.name)
        try:
            if metrics.is_file():
                log.points = read_jsonl(metrics)
            if summary.is_file():
                data = json.loads(summary.read_text(encoding="utf-8"))
                log.summary = data if isinstance(data, dict) else {}
        except (OSError, ValueError) as exc:
            log.problem = f"{type(exc).__name__}: {exc}"
        out[folder.name] = log
    return out


def curve_rows(logs: dict[str, TrainingLog], candidates: list[str] | None = None) -> list[dict[str, Any]]:
    """Long-form loss points: candidate, step, epoch, split (``train``/``validation``), loss."""
    out = []
    for name, log in logs.items():
        if candidates is not None and name not in candidates:
            continue
        for point in log.points:
            step = point.get("step")
            if not isinstance(step, int | float) or isinstance(step, bool):
                continue
            for key, split in (("train_loss", "train"), ("val_loss", "validation")):
                loss = _number(point.get(key))
                if loss is not None:
                    out.append(
                        {
                            "candidate": name,
                            "step": step,
                            "epoch": _number(point.get("epoch")),
                            "split": split,
                            "loss": loss,
                        }
                    )
    return out


def selected_steps(logs: dict[str, TrainingLog], candidates: list[str] | None = None) -> list[dict[str, Any]]:
    """The checkpoint each candidate kept: candidate, step, its validation loss (if logged)."""
    out = []
    for name, log in logs.items():
        if candidates is not None and name not in candidates:
            continue
        step = log.summary.get("selected_step")
        if not isinstance(step, int | float) or isinstance(step, bool):
            continue
        at_step = [p for p in log.points if p.get("step") == step and _number(p.get("val_loss")) is not None]
        val = _number(at_step[-1]["val_loss"]) if at_step else _number(log.summary.get("best_val_loss"))
        out.append({"candidate": name, "step": step, "val_loss": val, "select": log.summary.get("select")})
    return out


_FACTS = (
    ("method", "method"),
    ("requested_method", "requested method"),
    ("select", "checkpoint selection"),
    ("selected_step", "selected step"),
    ("train_examples", "train examples"),
    ("val_examples", "validation examples"),
    ("final_train_loss", "final train loss"),
    ("final_val_loss", "final validation loss"),
    ("best_val_loss", "best validation loss"),
    ("train_seconds", "train seconds"),
    ("tokens_per_second", "tokens / s"),
    ("cache_hit", "reused from cache"),
)


def _fact(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def training_facts(logs: dict[str, TrainingLog], candidates: list[str] | None = None) -> list[dict[str, str]]:
    """One row per fact (method, data sizes, losses, then every hyper-parameter), one column per candidate.

    Values are strings so a column can mix numbers and words.
    """
    names = [n for n in logs if candidates is None or n in candidates]
    rows = []
    for key, label in _FACTS:
        if any(key in logs[n].summary for n in names):
            rows.append({"fact": label, **{n: _fact(logs[n].summary.get(key)) for n in names}})
    hyper_keys: list[str] = []
    for n in names:
        for key in logs[n].summary.get("hyperparameters") or {}:
            if key not in hyper_keys:
                hyper_keys.append(key)
    for key in hyper_keys:
        rows.append(
            {
                "fact": key,
                **{n: _fact((logs[n].summary.get("hyperparameters") or {}).get(key)) for n in names},
            }
        )
    return rows
