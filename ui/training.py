"""The Training page's logic, without Streamlit: a fine-tuned candidate's ``training/<candidate>/`` folder
(``metrics.jsonl`` loss points, ``summary.json``) read back as curves, the checkpoint kept and the facts.

Readers are defensive: a torn or broken file is reported in :attr:`TrainingLog.problem`, never a crash.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakeoff.io import read_jsonl
from bakeoff.run.documents.base import finite

__all__ = ["TrainingLog", "curve_rows", "read_training", "selected_steps", "training_facts"]


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
                loss = finite(point.get(key))
                if loss is not None:
                    out.append(
                        {
                            "candidate": name,
                            "step": step,
                            "epoch": finite(point.get("epoch")),
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
        at_step = [p for p in log.points if p.get("step") == step and finite(p.get("val_loss")) is not None]
        val = finite(at_step[-1]["val_loss"]) if at_step else finite(log.summary.get("best_val_loss"))
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
