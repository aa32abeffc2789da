"""The console's recipe editor and launcher, without Streamlit: validate unsaved text, explain a key from
the JSON Schema, save, start ``bakeoff run`` in the background and follow it through the run folder.

Validation never runs code named by a recipe (``agent: module:Class`` is reported, not imported); only
:func:`launch_run`, which the page calls when the user presses Run, starts a process that does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bakeoff.io import write_text_atomic
from bakeoff.recipe.load import NOT_IMPORTED, Problem, RecipeError, load_recipe
from bakeoff.recipe.schema import Recipe
from bakeoff.run.documents.manifest import Manifest

__all__ = [
    "KeyHelp",
    "Launch",
    "RunProgress",
    "Validation",
    "annotations",
    "find_recipes",
    "follow",
    "help_for_problem",
    "launch_run",
    "save_recipe",
    "schema_keys",
    "validate_text",
]


# --- validation ---------------------------------------------------------------------------------------


@dataclass
class Validation:
    """The result of validating recipe text: problems (errors) and code that was not imported."""

    recipe: Recipe | None
    problems: list[Problem] = field(default_factory=list)
    not_imported: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem found (``module:Class`` agents are checked when the run starts)."""
        return not self.problems

    def lines(self) -> list[str]:
        """Every problem as ``FILE:LINE:COL: field: message``, the CLI's format."""
        return [str(p) for p in self.problems]


def validate_text(path: str | Path, text: str) -> Validation:
    """Validate unsaved recipe text as if it were the file at ``path`` (relative paths resolve against its
    folder); never imports ``module:Class`` agents that are not imported already."""
    try:
        recipe = load_recipe(path, text=text, import_code=False)
    except RecipeError as exc:
        problems = [p for p in exc.problems if p.message != NOT_IMPORTED]
        deferred = [p for p in exc.problems if p.message == NOT_IMPORTED]
        return Validation(None, problems, deferred)
    return Validation(recipe)


def annotations(problems: list[Problem]) -> list[dict[str, Any]]:
    """Gutter annotations for the Ace editor (0-based rows)."""
    return [
        {"row": max(p.line - 1, 0), "column": max(p.column - 1, 0), "text": str(p), "type": "error"}
        for p in problems
    ]


# --- schema help ----------------------------------------------------------------------------------------


@dataclass
class KeyHelp:
    """What the JSON Schema says about one recipe key."""

    path: str  # e.g. "eval.limit", "candidates[].k"
    description: str
    type: str
    default: Any = None
    has_default: bool = False
    choices: list[Any] = field(default_factory=list)
    constraints: dict[str, Any] = field(default_factory=dict)
    agents: list[str] = field(default_factory=list)  # for candidate keys: the agent kinds that have it
    required: bool = False

    def markdown(self) -> str:
        parts = [f"**`{self.path}`** — {self.type}" + (" (required)" if self.required else "")]
        if self.agents:
            parts.append("agents: " + ", ".join(f"`{a}`" for a in self.agents))
        parts.append(self.description or "(no description)")
        if self.choices:
            parts.append("one of: " + ", ".join(f"`{c}`" for c in self.choices))
        if self.has_default:
            parts.append(f"default: `{json.dumps(self.default)}`")
        if self.constraints:
            parts.append(", ".join(f"{k}: `{v}`" for k, v in self.constraints.items()))
        return "\n\n".join(parts)


_CONSTRAINTS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minItems",
    "maxLength",
    "pattern",
)


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        return {
            **defs.get(ref.removeprefix("#/$defs/"), {}),
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def _variants(node: dict[str, Any], defs: dict[str, Any]) -> list[dict[str, Any]]:
    node = _resolve(node, defs)
    for key in ("anyOf", "oneOf"):
        if key in node:
            return [_resolve(v, defs) for v in node[key] if v.get("type") != "null"]
    return [node]


def _type_name(node: dict[str, Any], defs: dict[str, Any]) -> str:
    names = []
    for v in _variants(node, defs):
        t = v.get("type")
        if t == "array":
            item = v.get("items") or {}
            inner = _type_name(item, defs) if item else "value"
            names.append(f"list of {inner}")
        elif t == "object" or "properties" in v:
            names.append("mapping")
        elif "const" in v:
            names.append(json.dumps(v["const"]))
        elif t:
            names.append(f"{t} ({v['format']})" if v.get("format") else str(t))
    if "anyOf" in node and any(v.get("type") == "null" for v in node["anyOf"]):
        names.append("null")
    return " or ".join(dict.fromkeys(names)) or "value"


def schema_keys(schema: dict[str, Any] | None = None) -> dict[str, KeyHelp]:
    """Every key a recipe can have, by dotted path (list items as ``[]``), from the recipe JSON Schema.

    Candidate keys of several agent kinds are merged, with ``agents`` listing the kinds that have the key.
    """
    if schema is None:
        from bakeoff.recipe.schema import json_schema

        schema = json_schema()
    defs = schema.get("$defs", {})
    out: dict[str, KeyHelp] = {}

    def walk(node: dict[str, Any], prefix: str, agent: str | None, depth: int) -> None:
        if depth > 8:
            return
        required = set(node.get("required", []))
        for name, prop in (node.get("properties") or {}).items():
            if name == "source_path":
                continue
            path = f"{prefix}.{name}" if prefix else name
            resolved = _resolve(prop, defs)
            choices = list(resolved.get("enum") or ([resolved["const"]] if "const" in resolved else []))
            help_ = out.get(path)
            if help_ is None:
                constraints = {k: resolved[k] for k in _CONSTRAINTS if k in resolved}
                for v in _variants(prop, defs):
                    constraints.update({k: v[k] for k in _CONSTRAINTS if k in v and k not in constraints})
                help_ = out[path] = KeyHelp(
                    path=path,
                    description=str(resolved.get("description") or prop.get("description") or ""),
                    type=_type_name(prop, defs),
                    default=resolved.get("default"),
                    has_default="default" in resolved,
                    choices=choices,
                    constraints=constraints,
                    required=name in required,
                )
            elif name == "agent":
                help_.choices = sorted(set(help_.choices) | set(choices))
            if agent and agent not in help_.agents:
                help_.agents.append(agent)
            for variant in _variants(prop, defs):
                if variant.get("properties"):
                    walk(variant, path, agent, depth + 1)
                items = variant.get("items")
                if variant.get("type") == "array" and isinstance(items, dict):
                    for item in _variants(items, defs):
                        if item.get("properties"):
                            kind = ((item.get("properties") or {}).get("agent") or {}).get("const")
                            walk(item, f"{path}[]", kind or agent, depth + 1)

    walk(schema, "", None, 0)
    if "candidates[].agent" in out:
        out["candidates[].agent"].type = "string"
        out["candidates[].agent"].description = (
            "Agent kind: a registered name or `package.module:Class`. Registered here: "
            + ", ".join(f"`{c}`" for c in out["candidates[].agent"].choices)
        )
    return out


def help_for_problem(problem: Problem, keys: dict[str, KeyHelp]) -> KeyHelp | None:
    """The schema entry of the key a problem is about (``candidates[2].k`` -> ``candidates[].k``)."""
    import re

    path = re.sub(r"\[\d+\]", "[]", problem.path)
    while path:
        if path in keys:
            return keys[path]
        path = path.rpartition(".")[0]
    return None


# --- files ----------------------------------------------------------------------------------------------


def find_recipes(folders: list[Path], extra: list[Path] = ()) -> list[Path]:
    """YAML files in ``folders`` plus ``extra`` paths that exist, without duplicates (absolute paths)."""
    found: dict[Path, None] = {}
    for folder in folders:
        folder = Path(folder)
        if folder.is_dir():
            for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
                found[path.resolve()] = None
    for path in extra:
        if path and Path(path).is_file():
            found[Path(path).resolve()] = None
    return list(found)


def save_recipe(path: str | Path, text: str) -> Path:
    """Write recipe text to ``path`` (atomically; parent folders are created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)
    return path


# --- launching and following runs -------------------------------------------------------------------------


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
        if self.stage == "complete":
            return 1.0
        return min(self.answered / self.total, 1.0) if self.total else 0.0

    @property
    def finished(self) -> bool:
        return self.stage in ("complete", "failed")


def launch_run(
    recipe_path: Path, runs_dir: Path, *, log_dir: Path | None = None, only: list[str] | None = None
) -> Launch:
    """Start ``bakeoff run RECIPE --runs-dir DIR`` as a background process (its output goes to a log file).

    The recipe's name is read from the saved file without importing any code.

    Raises:
        RecipeError: the saved file is not a valid recipe.
    """
    from bakeoff import paths

    recipe_path = Path(recipe_path).resolve()
    validation = validate_text(recipe_path, recipe_path.read_text(encoding="utf-8"))
    if validation.problems:
        raise RecipeError(validation.problems)
    from bakeoff.recipe._yaml import load_yaml

    data, _ = load_yaml(recipe_path.read_text(encoding="utf-8"))
    name = str(data["name"])
    runs_dir = Path(runs_dir).resolve()
    log_dir = Path(log_dir) if log_dir else paths.home() / "console" / "launches"
    log_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    log_path = log_dir / f"{name}-{stamp}.log"
    cmd = [sys.executable, "-m", "bakeoff", "run", str(recipe_path), "--runs-dir", str(runs_dir)]
    for item in only or []:
        cmd += ["--only", item]
    env = {**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "120"}
    with log_path.open("w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        process = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(recipe_path.parent),
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
        if manifest.status in ("complete", "failed"):
            progress.stage = manifest.status
            progress.error = manifest.error
        elif "answer" in timings:
            progress.stage = "scoring"
        elif "prepare" in timings:
            progress.stage = "answering"
        else:
            progress.stage = "preparing"
    if returncode is not None and progress.stage not in ("complete", "failed"):
        progress.stage = "failed"
        progress.error = progress.error or f"bakeoff run exited with code {returncode}; see its output"
    return progress
