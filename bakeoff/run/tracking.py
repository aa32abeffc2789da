"""Mirror a finished run to an MLflow tracking server: one parent MLflow run per bakeoff run, one child per
candidate, so a team compares bakeoff runs where it already keeps its experiments.

What lands where:

- parent (named after the run id): the recipe as run, flattened to dotted keys (``candidates.lora.train.
  learning_rate``), as params; the library versions and the verdict as tags; ``scores.json``,
  ``report.html`` (written now when the run has none), ``recipe.yaml`` and ``manifest.json`` as artifacts;
- each candidate (a child run, ``mlflow.parentRunId``): its own recipe block as params (a fine-tune's
  ``train.*`` hyper-parameters among them); every metric's mean, and its interval as ``<metric>.ci_low`` /
  ``<metric>.ci_high``, plus ``n`` and the error and latency counts, as metrics; a fine-tune's loss curves
  (``train_loss``, ``val_loss``, ``learning_rate``) as step metrics and its ``summary.json`` as an artifact.

MLflow names allow letters, digits and ``_ - . / space``; other characters become ``_`` (``hit_rate@4`` is
``hit_rate_4``). The mlflow package is imported only here (``bakeoff[mlflow]``).
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bakeoff.errors import BakeoffError
from bakeoff.io import read_jsonl
from bakeoff.run.store import RunInfo

__all__ = ["MirrorError", "Mirrored", "flatten", "mirror_to_mlflow", "mlflow_name"]

_PARAM_VALUE_LIMIT = 6000  # MLflow's limit on a param value (characters)
_PARAMS_PER_CALL, _METRICS_PER_CALL = 100, 1000  # MLflow's limits per log_batch call
_RUN_ID_TAG = "bakeoff.run_id"


class MirrorError(BakeoffError):
    """A run cannot be mirrored (not finished, mlflow missing, the server refused)."""


@dataclass
class Mirrored:
    """What :func:`mirror_to_mlflow` created."""

    experiment_id: str
    parent_run_id: str
    children: dict[str, str] = field(default_factory=dict)  # candidate -> MLflow run id
    url: str = ""


def mlflow_name(name: str) -> str:
    """A metric or param key MLflow accepts."""
    return re.sub(r"[^\w\-./ ]", "_", name)


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """Nested mappings and lists as ``{"a.b.0": "1"}``; a list of named blocks (candidates) is keyed by name."""
    out: dict[str, str] = {}
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list) and value and all(isinstance(v, dict) and "name" in v for v in value):
        items = [(str(v["name"]), {k: x for k, x in v.items() if k != "name"}) for v in value]
    elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, list) else str(value)
        return {prefix: text[:_PARAM_VALUE_LIMIT]}
    for key, sub in items:
        out.update(flatten(sub, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _millis(stamp: str | None) -> int | None:
    if not stamp:
        return None
    try:
        return int(datetime.fromisoformat(stamp).timestamp() * 1000)
    except ValueError:
        return None


def _recipe(info: RunInfo) -> dict[str, Any]:
    from ruamel.yaml import YAML

    path = info.path / "recipe.yaml"
    if not path.is_file():
        return {}
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _client(tracking_uri: str | None):
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise MirrorError(
            "bakeoff mlflow needs the mlflow package, which is not installed: pip install 'bakeoff[mlflow]'"
        ) from None
    return MlflowClient(tracking_uri=tracking_uri)


def mirror_to_mlflow(
    info: RunInfo, *, tracking_uri: str | None = None, experiment: str | None = None, replace: bool = False
) -> Mirrored:
    """Mirror a finished run (one with ``scores.json``) to MLflow.

    Args:
        info: the run, as :func:`~bakeoff.run.store.read_run` read it.
        tracking_uri: the MLflow server (``http://host:5000``) or store; default ``MLFLOW_TRACKING_URI``.
        experiment: the MLflow experiment (created when missing); default ``bakeoff/<recipe>``.
        replace: delete an earlier mirror of the same run first (otherwise mirroring it twice is an error).

    Raises:
        MirrorError: the run has no scores, mlflow is missing, or the server cannot be reached.
    """
    scores = info.scores_document
    if scores is None:
        raise MirrorError(
            f"run {info.run_id} has no scores.json (status {info.status}); nothing to mirror yet"
        )
    client = _client(tracking_uri)
    from mlflow.exceptions import MlflowException

    def batch(run_id: str, metrics=(), params=()) -> None:
        metrics, params = list(metrics), list(params)
        for i in range(0, len(params), _PARAMS_PER_CALL):
            client.log_batch(run_id, params=params[i : i + _PARAMS_PER_CALL])
        for i in range(0, len(metrics), _METRICS_PER_CALL):
            client.log_batch(run_id, metrics=metrics[i : i + _METRICS_PER_CALL])

    name = experiment or f"bakeoff/{info.recipe}"
    try:
        found = client.get_experiment_by_name(name)
        experiment_id = found.experiment_id if found is not None else client.create_experiment(name)
        earlier = client.search_runs([experiment_id], filter_string=f"tags.`{_RUN_ID_TAG}` = '{info.run_id}'")
        if earlier and not replace:
            raise MirrorError(
                f"run {info.run_id} is already mirrored to experiment {name!r} (MLflow run "
                f"{earlier[0].info.run_id}); pass --replace to mirror it again"
            )
        for old in earlier:
            client.delete_run(old.info.run_id)
        return _mirror(info, scores, client, experiment_id, batch)
    except MlflowException as exc:
        raise MirrorError(f"MLflow at {client.tracking_uri}: {str(exc).splitlines()[0]}") from None


def _mirror(info: RunInfo, scores, client, experiment_id: str, batch) -> Mirrored:
    from mlflow.entities import Metric, Param

    manifest = info.manifest_document
    start, end = _millis(manifest.started_at), _millis(manifest.ended_at)
    now = end or start or 0
    recipe = _recipe(info)
    status = "FINISHED" if info.status == "complete" else "FAILED"

    tags = {_RUN_ID_TAG: info.run_id, "bakeoff.recipe": info.recipe, "bakeoff.status": info.status}
    tags.update({f"bakeoff.version.{k}": v for k, v in manifest.versions.items()})
    if scores.headline:
        tags["bakeoff.headline"] = scores.headline
    parent = client.create_run(experiment_id, start_time=start, tags=tags, run_name=info.run_id)
    pid = parent.info.run_id
    params = flatten({k: v for k, v in recipe.items() if k != "candidates"})
    params.update(flatten(recipe.get("candidates", []), "candidates"))
    batch(pid, params=[Param(mlflow_name(k), v) for k, v in sorted(params.items())])
    _artifacts(client, pid, info)

    blocks = {c.get("name"): c for c in recipe.get("candidates", []) if isinstance(c, dict)}
    out = Mirrored(experiment_id, pid)
    for candidate, result in scores.candidates.items():
        child_tags = {"mlflow.parentRunId": pid, _RUN_ID_TAG: info.run_id, "bakeoff.candidate": candidate}
        child = client.create_run(experiment_id, start_time=start, tags=child_tags, run_name=candidate)
        cid = child.info.run_id
        out.children[candidate] = cid
        block = {k: v for k, v in blocks.get(candidate, {}).items() if k != "name"}
        metrics = []
        for metric, summary in result.metrics.items():
            key = mlflow_name(metric)
            low, high = summary.interval()
            for suffix, value in (("", summary.mean), (".ci_low", low), (".ci_high", high)):
                if value is not None:
                    metrics.append(Metric(key + suffix, float(value), now, 0))
            metrics.append(Metric(f"{key}.n", float(summary.n), now, 0))
        metrics.append(Metric("errors", float(result.errors), now, 0))
        if result.latency_s.mean is not None:
            metrics.append(Metric("latency_s.mean", float(result.latency_s.mean), now, 0))
        metrics += _curves(info.path / "training" / candidate / "metrics.jsonl", now)
        batch(
            cid, metrics=metrics, params=[Param(mlflow_name(k), v) for k, v in sorted(flatten(block).items())]
        )
        summary_file = info.path / "training" / candidate / "summary.json"
        if summary_file.is_file():
            client.log_artifact(cid, str(summary_file), artifact_path="training")
        client.set_terminated(cid, status=status, end_time=end)
    client.set_terminated(pid, status=status, end_time=end)
    out.url = f"{client.tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{pid}"
    return out


def _curves(path: Path, now: int) -> list:
    """A fine-tune's loss curves as step metrics (nothing for a candidate that did not train)."""
    from mlflow.entities import Metric

    out = []
    for row in read_jsonl(path) if path.is_file() else []:
        for key in ("train_loss", "val_loss", "learning_rate"):
            if row.get(key) is not None:
                out.append(Metric(key, float(row[key]), now, int(row["step"])))
    return out


def _artifacts(client, run_id: str, info: RunInfo) -> None:
    """scores.json, report.html (written to a temporary folder when the run has none), recipe and manifest."""
    for name in ("scores.json", "recipe.yaml", "manifest.json"):
        if (info.path / name).is_file():
            client.log_artifact(run_id, str(info.path / name))
    report = info.path / "report.html"
    if report.is_file():
        client.log_artifact(run_id, str(report))
        return
    from bakeoff.eval.report import write_report

    with tempfile.TemporaryDirectory() as tmp:
        write_report(info, Path(tmp) / "report.html", "html")
        client.log_artifact(run_id, str(Path(tmp) / "report.html"))
