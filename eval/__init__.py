"""Metrics and statistics, imported as ``bakeoff.eval``.

This module stays light (it is imported while validating recipes); metric classes live in
:mod:`bakeoff.eval.metrics` (and :mod:`bakeoff.eval.judged` for judge-graded ones) and import their
libraries only when they score.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_HEADLINE",
    "DEFAULT_METRICS",
    "JUDGE_METRICS",
    "METRICS",
    "UNAVAILABLE_METRICS",
    "get_metric",
    "metric_class",
    "metric_names",
    "metric_task",
]

# name -> (class in bakeoff.eval.metrics, or "module.Class" in bakeoff.eval, task it applies to or None for any)
METRICS: dict[str, tuple[str, str | None]] = {
    "bleu": ("Bleu", "qa"),
    "rouge1": ("Rouge1", "qa"),
    "rouge2": ("Rouge2", "qa"),
    "rougeL": ("RougeL", "qa"),
    "chrf": ("Chrf", "qa"),
    "exact_match": ("ExactMatch", "qa"),
    "token_f1": ("TokenF1", "qa"),
    "contains": ("ContainsReference", "qa"),
    "semantic_similarity": ("SemanticSimilarity", "qa"),
    "faithfulness": ("judged.Faithfulness", "qa"),
    "answer_relevancy": ("judged.AnswerRelevancy", "qa"),
    "context_precision": ("judged.ContextPrecision", "qa"),
    "context_recall": ("judged.ContextRecall", "qa"),
    "judge_rubric": ("judged.JudgeRubric", "qa"),
    "accuracy": ("Accuracy", "classification"),
    "macro_f1": ("MacroF1", "classification"),
}

# Metrics that need a `judge:` in the recipe.
JUDGE_METRICS = frozenset(
    {"faithfulness", "answer_relevancy", "context_precision", "context_recall", "judge_rubric"}
)

# Metrics a user may look for that cannot run here, and why (`bakeoff metrics` lists them; naming one in a
# recipe is a validation error with this text, never a failure half-way through a run).
UNAVAILABLE_METRICS: dict[str, str] = {
    "meteor": "METEOR needs NLTK's WordNet data, which NLTK downloads at first use; bakeoff runs offline and "
    "cannot fetch it. Use chrf (character n-grams) or semantic_similarity for tolerant matching instead.",
}

DEFAULT_METRICS: dict[str, list[str]] = {
    "qa": [
        "bleu",
        "rouge1",
        "rouge2",
        "rougeL",
        "chrf",
        "exact_match",
        "token_f1",
        "contains",
        "semantic_similarity",
    ],
    "classification": ["accuracy", "macro_f1"],
}

# The metric statistics, error analysis and reports lead with when the recipe names none (`eval.headline`).
DEFAULT_HEADLINE: dict[str, str] = {"qa": "rougeL", "classification": "accuracy"}


def metric_names() -> list[str]:
    """Every metric a recipe may name."""
    return list(METRICS)


def metric_task(name: str) -> str | None:
    """The task a metric applies to (``None``: any task)."""
    return METRICS[name][1]


def metric_class(name: str) -> type:
    """The class registered under ``name`` (imports its module, not its libraries)."""
    import importlib

    if name not in METRICS:
        if name in UNAVAILABLE_METRICS:
            raise KeyError(f"metric {name!r} is unavailable: {UNAVAILABLE_METRICS[name]}")
        raise KeyError(f"unknown metric {name!r}; available: {', '.join(METRICS)}")
    spec = METRICS[name][0]
    module, _, cls = spec.rpartition(".")
    return getattr(importlib.import_module(f"bakeoff.eval.{module or 'metrics'}"), cls)


def get_metric(name: str, **resources):
    """An instance of the metric class registered under ``name``.

    Args:
        name: a registered metric.
        **resources: what metrics may need (``embeddings``: a model reference, ``judge``: a
            :class:`~bakeoff.eval.judge.Judge`); each metric takes only those in its ``needs``.
    """
    cls = metric_class(name)
    return cls(**{k: resources[k] for k in getattr(cls, "needs", ()) if k in resources})
