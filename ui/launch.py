"""Start ``bakeoff run`` from the console and follow it through its run folder.

The run is a separate process that cannot import code from the recipe's folder or the working directory:
it is started as ``python -P -m bakeoff`` with only absolute ``PYTHONPATH`` folders, and a recipe naming
``module:Class`` code that is not installed (or in a ``--plugins-dir`` folder) is refused before anything
starts (:mod:`bakeoff.ui.trusted_code`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from bakeoff.recipe.load import RecipeError
from bakeoff.run.documents.manifest import Manifest
from bakeoff.ui.confine import confine
from bakeoff.ui.editor import validate_text
from bakeoff.ui.trusted_code import UntrustedCode, child_env, code_agents, code_problems

__all__ = ["Launch", "RunProgress", "find_launched_run", "follow", "launch_run", "run_command"]


@dataclass
class Launch:
    """A ``bakeoff run`` started from the console."""

    recipe_path: Path
    recipe_name: str
    runs_dir: Path
    log_path: Path
    started: float
    process: subprocess.Popen = field(repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class RunProgress:
    """Where a launched run is, read from its run folder and its process."""

    stage: str  # starting, preparing, answering, scoring, complete, failed
    run_path: Path | None = None
    answered: int = 0
    total: int = 0
    returncode: int | None = None
    error: str | None = None
    log_tail: str = ""

    @property
    def fraction(self) -> float:
        if self.stage in ("complete", "partial"):
            return 1.0
        return min(self.answered / self.total, 1.0) if self.total else 0.0

    @property
    def finished(self) -> bool:
        return self.stage in ("complete", "partial", "failed")


def run_command(recipe_path: Path, runs_dir: Path, only: Iterable[str] = ()) -> list[str]:
    """The command line of a run started from the console: ``-P`` keeps the working directory off
    ``sys.path`` (``python -m`` would put it first)."""
    cmd = [sys.executable, "-P", "-m", "bakeoff", "run", str(recipe_path), "--runs-dir", str(runs_dir)]
    for item in only:
        cmd += ["--only", item]
    return cmd


def launch_run(
    recipe_path: Path,
    runs_dir: Path,
    *,
    log_dir: Path | None = None,
    only: list[str] | None = None,
    writable: Iterable[Path] = (),
) -> Launch:
    """Start ``bakeoff run RECIPE --runs-dir DIR`` as a background process (its output goes to a log file).

    The recipe's name is read from the saved file without importing any code, and every ``module:Class``
    agent it names is located first: code that is not installed or in a plugins folder stops the launch.

    Args:
        recipe_path: the saved recipe.
        runs_dir: where the run folder goes.
        log_dir: where the run's output goes (default ``$BAKEOFF_HOME/console/launches``).
        only: candidates to run (``--only``), all when empty.
        writable: the folders the console writes to (its recipes folders); code found in them, or in
            ``runs_dir``, is refused.

    Raises:
        RecipeError: the saved file is not a valid recipe.
        UntrustedCode: the recipe names code the console will not run (each reason in ``problems``).
    """
    from bakeoff import paths
    from bakeoff.recipe._yaml import load_yaml

    recipe_path = Path(recipe_path).resolve()
    text = recipe_path.read_text(encoding="utf-8")
    validation = validate_text(recipe_path, text)
    if validation.problems:
        raise RecipeError(validation.problems)
    data, _ = load_yaml(text)
    name = str(data["name"])
    runs_dir = Path(runs_dir).resolve()
    cwd = Path.cwd()
    env = {**child_env(cwd=cwd), "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"}
    problems = code_problems(code_agents(data), writable=[*writable, runs_dir], env=env, cwd=cwd)
    if problems:
        raise UntrustedCode(problems)
    log_dir = Path(log_dir) if log_dir else paths.home() / "console" / "launches"
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    log_path = confine(log_dir / f"{name}-{stamp}.log", [log_dir], what="launch log folder")
    cmd = run_command(recipe_path, runs_dir, only or [])
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(cwd),  # where `bakeoff ui` started, as for a run typed in its terminal
            env=env,
            start_new_session=True,  # a console rerun or a closed tab does not kill the run
        )
    return Launch(recipe_path, name, runs_dir, log_path, datetime.now().timestamp(), process)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 8192))
            text = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def find_launched_run(runs_dir: Path, recipe_name: str, pid: int) -> Path | None:
    """The run folder whose manifest was written by process ``pid``."""
    folder = Path(runs_dir) / recipe_name
    if not folder.is_dir():
        return None
    for run in sorted(folder.iterdir(), reverse=True):
        try:
            manifest = Manifest.read(run / "manifest.json")
        except (OSError, ValueError):  # not there yet, half-written by another process, or not a manifest
            continue
        if manifest.pid == pid:
            return run
    return None


def _count_lines(path: Path) -> int:
    try:
        with path.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(65536), b""))
    except OSError:
        return 0


def follow(launch: Launch) -> RunProgress:
    """How far a launched run got: stage, answers written out of the expected total, the log's tail."""
    returncode = launch.process.poll()
    run_path = find_launched_run(launch.runs_dir, launch.recipe_name, launch.pid)
    progress = RunProgress(stage="starting", run_path=run_path, returncode=returncode)
    progress.log_tail = _tail(launch.log_path)
    if run_path is not None:
        try:
            manifest = Manifest.read(run_path / "manifest.json")
        except (OSError, ValueError):
            manifest = Manifest()
        progress.answered = _count_lines(run_path / "answers.jsonl")
        progress.total = (manifest.n_questions or 0) * len(manifest.answering)
        timings = manifest.timings_s
        if manifest.status in ("complete", "partial", "failed"):
            progress.stage = manifest.status
            progress.error = manifest.error
        elif "answer" in timings:
            progress.stage = "scoring"
        elif "prepare" in timings:
            progress.stage = "answering"
        else:
            progress.stage = "preparing"
    if returncode is not None and progress.stage not in ("complete", "partial", "failed"):
        progress.stage = "failed"
        progress.error = progress.error or f"bakeoff run exited with code {returncode}; see its output"
    return progress
