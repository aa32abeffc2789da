"""Checks that span several recipe fields: unique candidate names, task and labels, metrics against the task and
the judge, the headline, ``candidate:NAME`` references and the ``synthesize:`` jobs.

They run on the raw document (plain dicts and lists from the YAML), so they report even when other keys are
invalid; each returns ``(location, message)`` pairs that :func:`bakeoff.recipe.load.load_recipe` places in the file.
"""

from __future__ import annotations

from typing import Any

from bakeoff.models.refs import DEFAULT_MODEL
from bakeoff.synth.jobs import check_jobs

__all__ = ["cross_check"]

Located = tuple[tuple, str]


def cross_check(data: dict[str, Any]) -> list[Located]:
    """Checks that span several fields, on the raw document so they run even when other keys are invalid.

    Returns (location, message) pairs.
    """
    problems: list[Located] = []
    candidates = data.get("candidates") if isinstance(data.get("candidates"), list) else []
    seen = _candidate_names(candidates, problems)
    task = data.get("task", "qa")
    problems.extend(_task_labels(data, task))
    problems.extend(_metric_problems(data, task))
    problems.extend(check_jobs(data))
    problems.extend(_candidate_refs(candidates, seen))
    return problems


def _candidate_names(candidates: list[Any], problems: list[Located]) -> dict[str, int]:
    """Each candidate name's first index; a name given twice is a problem."""
    seen: dict[str, int] = {}
    for i, cand in enumerate(candidates):
        name = cand.get("name") if isinstance(cand, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            problems.append(
                (
                    ("candidates", i, "name"),
                    f"duplicate candidate name {name!r} (also candidates[{seen[name]}])",
                )
            )
        seen.setdefault(name, i)
    return seen


def _task_labels(data: dict[str, Any], task: Any) -> list[Located]:
    if task == "classification" and not data.get("labels"):
        return [(("task",), "task 'classification' needs a `labels:` list")]
    if task == "qa" and data.get("labels"):
        return [(("labels",), "`labels` only applies to task: classification")]
    spec = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    if task == "classification" and spec.get("retention"):
        return [(("eval", "retention"), "`eval.retention` (general questions answered freely) needs task: qa")]
    return []


def _metric_or_none(name: Any) -> Any:
    """The metric class named ``name``, or None (a name that is not a metric is reported by the schema)."""
    from bakeoff.eval import MetricError, metric_class

    try:
        return metric_class(name) if isinstance(name, str) else None
    except MetricError:
        return None


def _metric_problems(data: dict[str, Any], task: Any) -> list[Located]:
    """The metrics against the task, the judge and the headline (each metric's name is checked by the schema)."""
    spec = data.get("eval") if isinstance(data.get("eval"), dict) else {}
    metrics = spec.get("metrics") if isinstance(spec.get("metrics"), list) else []
    problems: list[Located] = []
    judge = data.get("judge")
    for j, metric in enumerate(metrics):
        cls = _metric_or_none(metric)
        if cls is None:
            continue  # reported by the schema (a metric is a known name)
        if task in ("qa", "classification") and cls.task not in (None, task):
            problems.append(
                (("eval", "metrics", j), f"metric {metric!r} is for task {cls.task!r}, this recipe is {task!r}")
            )
        if "judge" in cls.needs and judge is None:
            problems.append(
                (
                    ("eval", "metrics", j),
                    f"metric {metric!r} is graded by an LLM judge: add `judge: MODEL` "
                    f"(e.g. judge: {DEFAULT_MODEL}, or ollama:llama3.1:8b)",
                )
            )
        elif (
            "rubric" in cls.needs
            and isinstance(judge, str | dict)
            and not (isinstance(judge, dict) and judge.get("rubric"))
        ):
            problems.append(
                (
                    ("eval", "metrics", j),
                    f"metric {metric!r} needs a rubric: write `judge:` as a mapping with "
                    "`model:` and `rubric: {criteria: ..., scale: [1, 5]}`",
                )
            )
    problems.extend(_headline_problems(spec, metrics, task))
    return problems


def _headline_problems(spec: dict[str, Any], metrics: list[Any], task: Any) -> list[Located]:
    """The headline is a metric the recipe computes, with per-answer values."""
    from bakeoff.eval import DEFAULT_METRICS

    headline = spec.get("headline")
    cls = _metric_or_none(headline)
    if cls is None or not isinstance(task, str) or task not in DEFAULT_METRICS:
        return []
    listed = [m for m in metrics if isinstance(m, str)] if spec.get("metrics") else DEFAULT_METRICS[task]
    if headline not in listed:
        return [(("eval", "headline"), f"headline {headline!r} is not among the metrics computed: {', '.join(listed)}")]
    if cls.corpus_level:
        per_answer = "accuracy" if task == "classification" else "rougeL"
        return [
            (
                ("eval", "headline"),
                f"{headline} is corpus-level (no per-answer values); use a per-answer metric ({per_answer}) as headline",
            )
        ]
    return []


def _candidate_refs(candidates: list[Any], seen: dict[str, int]) -> list[Located]:
    """``model: candidate:NAME`` names another candidate of the recipe."""
    problems: list[Located] = []
    for i, cand in enumerate(candidates):
        model = cand.get("model") if isinstance(cand, dict) else None
        if isinstance(model, str) and model.startswith("candidate:"):
            target = model.partition(":")[2]
            if target not in seen:
                problems.append((("candidates", i, "model"), f"no candidate named {target!r}"))
            elif target == cand.get("name"):
                problems.append((("candidates", i, "model"), "a candidate cannot use its own model"))
    return problems
