"""Metrics and statistics, imported as ``bakeoff.eval``.

This module stays light (it is imported while validating recipes); metric classes live in
:mod:`bakeoff.eval.metrics` and import their libraries only when they score.
"""

from __future__ import annotations

__all__ = ["DEFAULT_METRICS", "METRICS", "get_metric", "metric_names", "metric_task"]

# name -> (class name in bakeoff.eval.metrics, task it applies to or None for any)
METRICS: dict[str, tuple[str, str | None]] = {
    "bleu": ("Bleu", "qa"),
    "rouge1": ("Rouge1", "qa"),
    "rouge2": ("Rouge2", "qa"),
    "rougeL": ("RougeL", "qa"),
    "exact_match": ("ExactMatch", "qa"),
    "token_f1": ("TokenF1", "qa"),
    "contains": ("ContainsReference", "qa"),
    "accuracy": ("Accuracy", "classification"),
    "macro_f1": ("MacroF1", "classification"),
}

DEFAULT_METRICS: dict[str, list[str]] = {
    "qa": ["bleu", "rouge1", "rouge2", "rougeL", "exact_match", "token_f1", "contains"],
    "classification": ["accuracy", "macro_f1"],
}


def metric_names() -> list[str]:
    """Every metric a recipe may name."""
    return list(METRICS)


def metric_task(name: str) -> str | None:
    """The task a metric applies to (``None``: any task)."""
    return METRICS[name][1]


def get_metric(name: str):
    """An instance of the metric class registered under ``name``."""
    from bakeoff.eval import metrics

    if name not in METRICS:
        raise KeyError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    return getattr(metrics, METRICS[name][0])()
