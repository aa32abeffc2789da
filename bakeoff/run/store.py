"""The run store: ``runs/<recipe>/<run-id>/`` folders.

A run folder holds ``recipe.yaml`` (as run), ``manifest.json`` (status, timings, versions, hardware),
``answers.jsonl`` (one line per answer, appended as answers arrive) and ``scores.json`` (the two documents are
typed in :mod:`bakeoff.run.documents`). Whole files are
written to a temporary name and renamed, so a reader never sees half a file, and the manifest says
``complete`` only after everything else is on disk. A run killed part-way stays ``running`` (its process is
gone, so :func:`read_run` reports it as ``interrupted``) or ``failed``.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import secrets
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from bakeoff.errors import BakeoffError
from bakeoff.io import append_jsonl, cut_torn_tail, read_jsonl, write_json_atomic
from bakeoff.run.documents.manifest import Manifest
from bakeoff.run.documents.scores import Scores

if TYPE_CHECKING:
    from bakeoff.core import Question

__all__ = [
    "RunInfo",
    "RunStoreError",
    "RunWriter",
    "by_candidate",
    "find_run",
    "list_runs",
    "read_answers",
    "read_answers_checked",
    "read_run",
]

STATUSES = ("running", "complete", "partial", "failed", "interrupted")
_VERSIONED = (
    "bakeoff",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "sacrebleu",
    "rouge-score",
    "chromadb",
    "ragas",
    "llama-cpp-python",
    "sentence-transformers",
    "pydantic",
)


class RunStoreError(BakeoffError):
    """A run cannot be found or read."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    return out


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "host": socket.gethostname(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["ram_gib"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if "torch" in sys.modules:  # only report the GPU if torch is already loaded (never import it for this)
        torch = sys.modules["torch"]
        info["cuda"] = bool(torch.cuda.is_available())
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    return info


class RunWriter:
    """Writes one run folder; see the module docstring for the layout."""

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = path
        self.manifest = manifest
        self._answers = (path / "answers.jsonl").open("a", encoding="utf-8")

    @classmethod
    def create(cls, runs_dir: Path, recipe_name: str, recipe_text: str, **facts: Any) -> RunWriter:
        """Make ``runs_dir/recipe_name/<run-id>/`` with ``recipe.yaml`` and a ``running`` manifest."""
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        run_id = f"{stamp}-{secrets.token_hex(2)}"
        path = Path(runs_dir) / recipe_name / run_id
        path.mkdir(parents=True)
        (path / "recipe.yaml").write_text(recipe_text, encoding="utf-8")
        manifest = {
            "run_id": run_id,
            "recipe": recipe_name,
            "status": "running",
            "started_at": _now(),
            "ended_at": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "argv": sys.argv,
            "versions": package_versions(),
            "hardware": hardware(),
            "timings_s": {},
            "candidates": {},
            "notes": [],
            **facts,
        }
        writer = cls(path, manifest)
        writer.save_manifest()
        return writer

    @classmethod
    def reopen(cls, path: Path) -> RunWriter:
        """Continue an unfinished run (``bakeoff run --resume``): drop a torn last answer line, mark it running.

        Raises:
            RunStoreError: the run is unreadable or already complete.
        """
        info = read_run(path)
        if info.problem:
            raise RunStoreError(f"cannot resume {path}: {info.problem}")
        if info.status == "complete":
            raise RunStoreError(f"run {info.run_id} is already complete; nothing to resume")
        if info.status == "running":
            raise RunStoreError(
                f"run {info.run_id} is still running (pid {info.manifest_document.pid}); wait for it or stop it first"
            )
        cut_torn_tail(Path(path) / "answers.jsonl")
        manifest = dict(info.manifest)
        manifest.update(status="running", pid=os.getpid(), host=socket.gethostname(), ended_at=None)
        manifest.pop("error", None)
        manifest.setdefault("resumed_at", []).append(_now())
        writer = cls(Path(path), manifest)
        writer.save_manifest()
        return writer

    def save_manifest(self) -> None:
        write_json_atomic(self.path / "manifest.json", self.manifest)

    def append_answers(self, candidate: str, rows: list[dict[str, Any]]) -> None:
        """Append answer rows (each one line, flushed and fsynced, so a crash loses at most a partial line)."""
        append_jsonl(self._answers, ({"candidate": candidate, **row} for row in rows))

    def write_scores(self, scores: Scores | Mapping[str, Any]) -> None:
        """Write ``scores.json`` (a plain dict is validated as a :class:`~bakeoff.run.documents.scores.Scores` first)."""
        Scores.of(scores).write(self.path / "scores.json")

    def finish(self, status: str, error: str | None = None) -> None:
        """Close the run with ``complete``, ``partial`` (every file written, some candidates failed: see
        :mod:`bakeoff.eval.failures`) or ``failed``; the manifest is written last."""
        if status not in ("complete", "partial", "failed"):
            raise ValueError(f"a run finishes complete, partial or failed, not {status!r}")
        self._answers.close()
        self.manifest["status"] = status
        self.manifest["ended_at"] = _now()
        if error:
            self.manifest["error"] = error
        self.manifest["hardware"] = hardware()
        self.save_manifest()


@dataclass
class RunInfo:
    """A run folder as read back: ``manifest`` and ``scores`` as the JSON on disk (plain dicts), and the
    same typed as :attr:`manifest_document` and :attr:`scores_document`, which the readers use."""

    path: Path
    manifest: dict[str, Any]
    scores: dict[str, Any] | None = None
    problem: str | None = None  # why the run could not be read, if it could not
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def manifest_document(self) -> Manifest:
        """``manifest.json`` as a :class:`~bakeoff.run.documents.manifest.Manifest`."""
        return Manifest.of(self.manifest)

    @cached_property
    def scores_document(self) -> Scores | None:
        """``scores.json`` as a :class:`~bakeoff.run.documents.scores.Scores` (``None`` before the run scored)."""
        return Scores.of(self.scores) if self.scores is not None else None

    @property
    def run_id(self) -> str:
        return self.manifest_document.run_id or self.path.name

    @property
    def recipe(self) -> str:
        return self.manifest_document.recipe or self.path.parent.name

    @property
    def status(self) -> str:
        return self.manifest_document.status

    @property
    def candidates(self) -> list[str]:
        if self.scores and self.scores_document is not None:
            return list(self.scores_document.candidates)
        return list(self.manifest_document.candidates)


def _pid_alive(pid: Any, host: Any) -> bool:
    if not isinstance(pid, int) or host != socket.gethostname():
        return True  # cannot tell: trust the manifest
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _not_a_document(exc: ValidationError, data: Any) -> str:
    """The first problem of a document that does not fit its model, located by its key path in ``data``
    (pydantic's own location also names the union member it tried, which is not a key)."""
    located = []
    for error in exc.errors():
        path, node = [], data
        for part in error["loc"]:
            in_dict = isinstance(node, dict) and part in node
            in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
            if not (in_dict or in_list):
                break
            path.append(str(part))
            node = node[part]
        where = ".".join(path) or "(top level)"
        if where not in (w for w, _ in located):
            located.append((where, error["msg"]))
    where, msg = located[0]
    more = f" (and {len(located) - 1} more)" if len(located) > 1 else ""
    return f"{where}: {msg}{more}"


def read_run(path: Path) -> RunInfo:
    """Read a run folder; a broken one comes back with ``problem`` set instead of raising.

    Both documents are validated here, so a file that is not JSON, or JSON that does not fit
    :mod:`bakeoff.run.documents`, makes the run unreadable with the reason, never a crash in a reader.
    """
    path = Path(path)
    unreadable = {"run_id": path.name, "recipe": path.parent.name, "status": "unreadable"}
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        if not isinstance(manifest, dict):
            raise ValueError("manifest is not a JSON object")
    except (OSError, ValueError) as exc:
        return RunInfo(path, unreadable, problem=f"manifest.json: {exc}")
    if manifest.get("status") == "running" and not _pid_alive(manifest.get("pid"), manifest.get("host")):
        manifest["status"] = "interrupted"
    info = RunInfo(path, manifest)
    try:
        info.manifest_document  # noqa: B018 - validates (and caches) the typed manifest
    except ValidationError as exc:
        return RunInfo(path, unreadable, problem=f"manifest.json: {_not_a_document(exc, manifest)}")
    if (path / "scores.json").is_file():
        try:
            info.scores = json.loads((path / "scores.json").read_text(encoding="utf-8"))
            if not isinstance(info.scores, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            return RunInfo(path, manifest, problem=f"scores.json: {exc}")
        try:
            info.scores_document  # noqa: B018 - validates (and caches) the typed scores
        except ValidationError as exc:
            return RunInfo(path, manifest, problem=f"scores.json: {_not_a_document(exc, info.scores)}")
    return info


def list_runs(runs_dir: Path, recipe: str | None = None) -> list[RunInfo]:
    """Every run under ``runs_dir`` (newest first), optionally of one recipe."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    out = []
    for recipe_dir in runs_dir.iterdir():
        if not recipe_dir.is_dir() or (recipe and recipe_dir.name != recipe):
            continue
        for run_dir in recipe_dir.iterdir():
            if run_dir.is_dir() and not run_dir.name.startswith("."):
                out.append(read_run(run_dir))
    out.sort(key=lambda r: (r.manifest_document.started_at or "", r.run_id), reverse=True)
    return out


def find_run(runs_dir: Path, ref: str) -> RunInfo:
    """A run by path, by id (or unique id prefix), by ``recipe/id``, or ``latest`` / a recipe name (its newest).

    Raises:
        RunStoreError: nothing or several runs match.
    """
    as_path = Path(ref)
    if (as_path / "manifest.json").is_file():
        return read_run(as_path)
    runs = list_runs(runs_dir)
    if not runs:
        raise RunStoreError(f"no runs in {runs_dir}; start one with: bakeoff run RECIPE")
    if ref == "latest":
        return runs[0]
    by_recipe = [r for r in runs if r.recipe == ref]
    if by_recipe:
        return by_recipe[0]
    matches = [r for r in runs if r.run_id.startswith(ref) or f"{r.recipe}/{r.run_id}".startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise RunStoreError(f"no run matches {ref!r} in {runs_dir}; `bakeoff runs` lists them")
    raise RunStoreError(f"{ref!r} matches {len(matches)} runs; give more of the id")


def read_answers(path: Path) -> list[dict[str, Any]]:
    """The answer rows of a run, in file order.

    A torn last line (a crash mid-write) is dropped; when a resumed run answered a question again, the last
    row for each (candidate, question_id) wins.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for row in read_jsonl(Path(path) / "answers.jsonl"):
        key = (str(row.get("candidate")), str(row.get("question_id")))
        rows.pop(key, None)
        rows[key] = row
    return list(rows.values())


def read_answers_checked(path: Path, *, skip_bad_lines: bool = False) -> tuple[list[dict[str, Any]], int]:
    """The answer rows of a finished run, every line checked (for ``bakeoff score``), and how many were dropped.

    A line that is torn (no newline at the end of the file), not JSON, or not an answer row (an object with
    ``candidate`` and ``question_id``) stops with its location, unless ``skip_bad_lines``: then it is left out
    and counted. As in :func:`read_answers`, the last row for each (candidate, question) wins.

    Raises:
        RunStoreError: ``answers.jsonl:LINE: why`` (without ``skip_bad_lines``), or no answers at all.
    """
    file = Path(path) / "answers.jsonl"
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    dropped = 0
    try:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
    except OSError as exc:
        raise RunStoreError(f"{file}: cannot read: {exc.strerror or exc}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        problem = None
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            row, problem = None, "not a JSON object"
        if not line.endswith("\n"):
            problem = "torn last line (the run was cut while writing it)"
        elif problem is None and not (isinstance(row, dict) and "candidate" in row and "question_id" in row):
            problem = "not an answer row (needs 'candidate' and 'question_id')"
        if problem is not None:
            if not skip_bad_lines:
                raise RunStoreError(
                    f"{file}:{lineno}: {problem}; `bakeoff score --skip-bad-lines` scores the readable rows"
                )
            dropped += 1
            continue
        key = (str(row["candidate"]), str(row["question_id"]))
        rows.pop(key, None)
        rows[key] = row
    if not rows:
        raise RunStoreError(f"{file}: no readable answers")
    return list(rows.values()), dropped


def by_candidate(rows: list[dict[str, Any]]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, Question]]:
    """Answer rows grouped by candidate, and the questions they answer rebuilt from the rows (id, question,
    reference: what re-scoring needs when the evaluation file is gone)."""
    from bakeoff.core import Question

    answers: dict[str, list[dict[str, Any]]] = {}
    questions: dict[str, Question] = {}
    for row in rows:
        answers.setdefault(row["candidate"], []).append(row)
        questions.setdefault(
            row["question_id"],
            Question(
                id=row["question_id"], question=row.get("question", ""), reference=str(row.get("reference", ""))
            ),
        )
    return answers, questions
