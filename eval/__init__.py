"""Metrics and statistics, imported as ``bakeoff.eval``; this module is the metric registry.

A metric is a class that declares its name, task, needs, whether it is a default, its description and range
(:class:`bakeoff.eval.metrics.Metric`). The built-ins are the metric classes defined in the modules of
:data:`BUILTIN_MODULES`; third-party metrics register in the entry-point group ``bakeoff.metrics``
(``name = "package.module:Class"``). Everything else is derived from the classes: the names a recipe may use,
those that need a judge (:data:`JUDGE_METRICS`), the defaults per task (:data:`DEFAULT_METRICS`), what
``bakeoff metrics`` prints and what the recipe validator accepts.

Light on purpose (the recipe validator imports it): the built-in metric modules import only the standard
library until they score, and a plugin's module is imported only when a recipe names it or ``bakeoff
metrics`` lists it. A plugin cannot take a built-in's name, and one that fails to import is reported with
the reason (:class:`MetricError`), never with a traceback.
"""

from __future__ import annotations

import importlib
import re
from functools import cache
from typing import TYPE_CHECKING, Any

from bakeoff.errors import BakeoffError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from bakeoff.eval.metrics import Metric

__all__ = [
    "BUILTIN_MODULES",
    "DEFAULT_HEADLINE",
    "DEFAULT_METRICS",
    "ENTRY_POINT_GROUP",
    "JUDGE_METRICS",
    "METRICS",
    "MetricError",
    "automatic_metrics",
    "builtin_metrics",
    "get_metric",
    "metric_class",
    "metric_names",
    "metric_origin",
    "metric_task",
    "plugin_metrics",
    "reset_registry",
    "runnable_metric_class",
]

ENTRY_POINT_GROUP = "bakeoff.metrics"

# Where the built-in metrics are defined; each module's metric classes register in definition order, which
# is the order of `bakeoff metrics` and of the default metrics in scores.json.
BUILTIN_MODULES = (
    "bakeoff.eval.metrics",
    "bakeoff.eval.meteor",
    "bakeoff.eval.ragas_metrics",
    "bakeoff.eval.rubric",
    "bakeoff.eval.classification",
    "bakeoff.eval.retrieval",
)

# The metric statistics, error analysis and reports lead with when the recipe names none (`eval.headline`).
DEFAULT_HEADLINE: dict[str, str] = {"qa": "rougeL", "classification": "accuracy"}

TASKS = ("qa", "classification")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.@\-]*$")


class MetricError(BakeoffError):
    """A metric cannot be found, imported or used as declared; the message says what to do."""


def _declaration_problems(cls: type[Metric], *, plugin: bool) -> list[str]:
    """What is wrong with a metric class's declarations (empty when nothing)."""
    from bakeoff.eval.metrics import NEEDS, SAMPLE_FIELDS

    problems = []
    if not isinstance(getattr(cls, "name", None), str) or not _NAME.match(cls.name):
        problems.append("`name` must be a string of letters, digits and _ . @ - (what a recipe writes)")
    if cls.task is not None and cls.task not in TASKS:
        problems.append(f"`task` must be one of {', '.join(TASKS)} or None, not {cls.task!r}")
    if not isinstance(cls.needs, tuple | list):
        problems.append(f"`needs` must be a tuple of: {', '.join(NEEDS)}")
    elif unknown := [n for n in cls.needs if n not in NEEDS]:
        problems.append(f"unknown `needs` {unknown}; known: {', '.join(NEEDS)}")
    try:
        low, high = cls.score_range
        ordered = low < high
    except (TypeError, ValueError):
        ordered = False
    if not ordered:
        problems.append(f"`score_range` {cls.score_range!r} must be (low, high) with low < high")
    try:
        fields = [f for f in cls.data_fields() if f not in SAMPLE_FIELDS]
    except (TypeError, ValueError) as exc:
        problems.append(f"score() must be a method taking keyword arguments: {exc}")
    else:
        if fields:
            problems.append(f"score() takes {fields}, which are not data a metric gets: {', '.join(SAMPLE_FIELDS)}")
    if plugin and (cls.default or cls.automatic):
        problems.append(
            "a plugin metric runs when a recipe names it: set `default = False` and `automatic = False` "
            "(`default` and `automatic` are for built-ins)"
        )
    return problems


def _check_class(cls: Any, where: str, *, plugin: bool) -> type[Metric]:
    """``cls`` if it is a well-declared metric class, else a :class:`MetricError` that says what is wrong."""
    from bakeoff.eval.metrics import Metric

    if not (isinstance(cls, type) and issubclass(cls, Metric)):
        raise MetricError(f"{where} is not a subclass of bakeoff.eval.metrics.Metric")
    problems = _declaration_problems(cls, plugin=plugin)
    if problems:
        raise MetricError(f"{where}: " + "; ".join(problems))
    return cls


@cache
def builtin_metrics() -> dict[str, type[Metric]]:
    """The built-in metric classes by name, in registration order (imports their modules, not libraries)."""
    found: dict[str, type[Metric]] = {}
    for module_name in BUILTIN_MODULES:
        for obj in vars(importlib.import_module(module_name)).values():
            if isinstance(obj, type) and obj.__module__ == module_name and "name" in vars(obj):
                cls = _check_class(obj, f"{module_name}.{obj.__name__}", plugin=False)
                if cls.name in found:
                    raise MetricError(f"two built-in metrics are named {cls.name!r}")
                found[cls.name] = cls
    return found


@cache
def _entry_points() -> tuple[EntryPoint, ...]:
    from importlib.metadata import entry_points

    return tuple(entry_points(group=ENTRY_POINT_GROUP))


def _describe(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    origin = f" from {dist.name} {dist.version}" if dist is not None else ""
    return f"plugin metric {ep.name!r} ({ep.value}{origin})"


@cache
def plugin_metrics() -> dict[str, EntryPoint | MetricError]:
    """Registered third-party metrics: name -> entry point (not imported), or the error that refuses it."""
    out: dict[str, EntryPoint | MetricError] = {}
    builtins = builtin_metrics()
    for ep in _entry_points():
        if ep.name in builtins:
            out[ep.name] = MetricError(
                f"{_describe(ep)} has the name of a built-in metric; a plugin cannot replace one: "
                "rename its entry point and class `name`"
            )
        elif ep.name in out:
            first = out[ep.name]
            also = _describe(first) if not isinstance(first, MetricError) else "another plugin"
            out[ep.name] = MetricError(f"{_describe(ep)} and {also} have the same name; uninstall one")
        else:
            out[ep.name] = ep
    return out


@cache
def _load_plugin(name: str) -> type[Metric]:
    found = plugin_metrics()[name]
    if isinstance(found, MetricError):
        raise found
    try:
        obj = found.load()
    except Exception as exc:  # a broken plugin is reported, never a traceback
        raise MetricError(
            f"{_describe(found)} failed to import: {type(exc).__name__}: {exc}. Reinstall or fix the package"
        ) from None
    cls = _check_class(obj, _describe(found), plugin=True)
    if cls.name != name:
        raise MetricError(f"{_describe(found)} loads a class named {cls.name!r}; the two names must agree")
    return cls


def metric_class(name: str) -> type[Metric]:
    """The class registered under ``name`` (a plugin's module is imported here, once).

    Raises:
        MetricError: unknown or unavailable name, or a plugin that cannot be loaded.
    """
    builtins = builtin_metrics()
    if name in builtins:
        return builtins[name]
    if name not in plugin_metrics():
        raise MetricError(f"unknown metric {name!r}; available: {', '.join(metric_names())}")
    return _load_plugin(name)


def runnable_metric_class(name: str) -> type[Metric]:
    """:func:`metric_class`, refused when the metric cannot run on this machine (what a recipe and scoring use;
    readers of finished runs use :func:`metric_class`, which never looks for the metric's data).

    Raises:
        MetricError: as :func:`metric_class`, or the metric's :meth:`~bakeoff.eval.metrics.Metric.unavailable`
            reason (e.g. METEOR without WordNet).
    """
    cls = metric_class(name)
    if why := cls.unavailable():
        raise MetricError(f"metric {name!r} is unavailable: {why}")
    return cls


def metric_origin(name: str) -> str:
    """``"built-in"``, or the distribution that provides a plugin metric."""
    if name in builtin_metrics():
        return "built-in"
    found = plugin_metrics().get(name)
    dist = getattr(found, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "plugin"


def metric_names() -> list[str]:
    """Every metric a recipe may name: built-ins (not the automatic ones) and registered plugins."""
    named = [n for n, cls in builtin_metrics().items() if not cls.automatic]
    return named + [n for n, found in plugin_metrics().items() if not isinstance(found, MetricError)]


def automatic_metrics() -> list[str]:
    """Built-in metrics scored without being named, for every candidate that retrieves."""
    return [n for n, cls in builtin_metrics().items() if cls.automatic]


def metric_task(name: str) -> str | None:
    """The task a metric applies to (``None``: any task)."""
    return metric_class(name).task


def get_metric(name: str, **resources: Any) -> Metric:
    """An instance of the metric class registered under ``name``.

    Args:
        name: a registered metric.
        **resources: what metrics may be built with (:data:`bakeoff.eval.metrics.RESOURCES`: ``judge``,
            ``embeddings``, ``ollama_host``, ``labels``, ``k``); each metric gets those its constructor names.

    Raises:
        MetricError: as :func:`runnable_metric_class`, or a plugin metric whose constructor fails.
    """
    import inspect

    cls = runnable_metric_class(name)
    params = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        kwargs = resources
    else:
        kwargs = {p.name: resources[p.name] for p in params if p.name in resources}
    if name in builtin_metrics():
        return cls(**kwargs)
    try:
        return cls(**kwargs)
    except Exception as exc:
        raise MetricError(f"metric {name!r} ({metric_origin(name)}) could not be built: {exc}") from None


def _try_class(name: str) -> type[Metric] | MetricError:
    try:
        return metric_class(name)
    except MetricError as exc:
        return exc


@cache
def _derived(attr: str) -> Any:
    if attr == "METRICS":  # a plugin that cannot be loaded is left out (`bakeoff metrics` says why)
        return {name: cls for name in metric_names() if not isinstance(cls := _try_class(name), MetricError)}
    if attr == "JUDGE_METRICS":
        return frozenset(name for name, cls in _derived("METRICS").items() if "judge" in cls.needs)
    if attr == "DEFAULT_METRICS":
        return {
            task: [n for n, cls in builtin_metrics().items() if cls.default and cls.task in (None, task)]
            for task in TASKS
        }
    raise AttributeError(attr)


def __getattr__(attr: str) -> Any:
    """The derived lists, computed on first use: ``METRICS`` (name -> class, every metric a recipe may name,
    plugins imported), ``JUDGE_METRICS`` (names that need a judge) and ``DEFAULT_METRICS`` (task -> names)."""
    if attr in ("METRICS", "JUDGE_METRICS", "DEFAULT_METRICS"):
        return _derived(attr)
    raise AttributeError(f"module {__name__!r} has no attribute {attr!r}")


def reset_registry() -> None:
    """Forget what was discovered (tests that install a plugin call this)."""
    for fn in (builtin_metrics, _entry_points, plugin_metrics, _load_plugin, _derived):
        fn.cache_clear()
