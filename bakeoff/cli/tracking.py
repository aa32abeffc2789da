"""Tracking commands: ``bakeoff mlflow`` (mirror a finished run to an MLflow tracking server).

Only typer and rich at import time; mlflow is imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from bakeoff.cli._common import DEFAULT_RUNS, RunArg, RunsDir, console, fail, find_run_or_exit

__all__ = ["mlflow"]


def mlflow(
    run_ref: RunArg = "latest",
    tracking_uri: Annotated[
        str | None,
        typer.Option(
            "--tracking-uri",
            help="The MLflow tracking server (http://127.0.0.1:5000) or store URI.",
            envvar="MLFLOW_TRACKING_URI",
        ),
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(
            "--experiment", help="MLflow experiment (created when missing); default bakeoff/<recipe>."
        ),
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="Delete an earlier mirror of this run first.")
    ] = False,
    runs_dir: RunsDir = DEFAULT_RUNS,
) -> None:
    """Mirror a finished run to MLflow: one parent run (recipe params, scores.json and report.html), and one
    child run per candidate (its settings, metric means with interval bounds, loss curves by step)."""
    info = find_run_or_exit(runs_dir, run_ref)
    from bakeoff.run.tracking import MirrorError, mirror_to_mlflow

    try:
        out = mirror_to_mlflow(info, tracking_uri=tracking_uri, experiment=experiment, replace=replace)
    except MirrorError as exc:
        raise fail(str(exc), 1) from None
    console.print(
        f"mirrored run {info.run_id} to MLflow: parent run {out.parent_run_id} with {len(out.children)} candidate "
        f"run(s) in experiment {out.experiment_id}\n{out.url}",
        soft_wrap=True,
        highlight=False,
    )
