"""Where a run started from the console may import ``agent: module:Class`` code from.

A recipe can name any module. From a terminal that is the user's own choice; from the console the recipe may
have been typed by whoever reached the page, so the code must already be on this machine by the operator's
choice: an installed distribution (site-packages, an editable install, an entry point), or a folder named when
the console started (``bakeoff ui --plugins-dir DIR``, or an absolute ``PYTHONPATH`` entry). Never the recipe's
folder, the working directory, or any folder the console writes to.

Two things make that hold. The run is started as ``python -P -m bakeoff`` with a ``PYTHONPATH`` of absolute
folders only (:func:`child_env`), so neither the working directory nor a relative entry is importable. And
before starting it, :func:`code_problems` asks that same interpreter where each named top-level module would
be found (``importlib.util.find_spec``, which locates a module without running it) and refuses any that is
missing or lives elsewhere — with a message the page shows before anything runs.
"""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bakeoff.errors import BakeoffError
from bakeoff.ui.confine import inside

__all__ = [
    "CONSOLE_ONLY_ENV",
    "UntrustedCode",
    "child_env",
    "code_agents",
    "code_problems",
    "installed_roots",
    "plugin_folders",
]

# The console's own secrets: a run it starts has no use for them.
CONSOLE_ONLY_ENV = ("BAKEOFF_UI_TOKEN",)

_PROBE = """
import importlib.util, json, os, site, sys, sysconfig
paths = sysconfig.get_paths()
installed = [os.path.realpath(p) for p in [*site.getsitepackages(), paths["purelib"], paths["platlib"]] if p]
out, elsewhere = {}, []
for name in sys.argv[1:]:
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError) as exc:
        out[name] = {"error": str(exc)}
        continue
    if spec is None:
        out[name] = None
        continue
    places = list(spec.submodule_search_locations or []) or [spec.origin or ""]
    out[name] = {"origin": spec.origin, "locations": places if spec.submodule_search_locations else []}
    if not all(os.path.realpath(p).startswith(tuple(installed)) for p in places):
        elsewhere.append(name)
if elsewhere:  # an editable install: ask the installed distributions (slow, so only when needed)
    import importlib.metadata
    dists = importlib.metadata.packages_distributions()
    for name in elsewhere:
        out[name]["distributions"] = sorted(set(dists.get(name, [])))
print(json.dumps(out))
"""


class UntrustedCode(BakeoffError):
    """A recipe started from the console names code that is not installed or not in a plugins folder."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


def plugin_folders(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> list[Path]:
    """The folders a launched run may import plugin code from: the console's ``PYTHONPATH`` entries (where
    ``bakeoff ui --plugins-dir`` puts its folders), made absolute against the console's start-up folder. An
    empty entry (which means "the current folder" to Python) is dropped."""
    env = os.environ if env is None else env
    base = Path(cwd or Path.cwd())
    out: list[Path] = []
    for entry in (env.get("PYTHONPATH") or "").split(os.pathsep):
        if entry.strip():
            path = Path(os.path.abspath(base / Path(entry).expanduser()))
            if path not in out:
                out.append(path)
    return out


def child_env(env: Mapping[str, str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """The environment of a process the console starts: its own, less the console's secrets, with
    ``PYTHONPATH`` reduced to absolute folders (:func:`plugin_folders`)."""
    env = dict(os.environ if env is None else env)
    folders = plugin_folders(env, cwd)
    for name in CONSOLE_ONLY_ENV:
        env.pop(name, None)
    if folders:
        env["PYTHONPATH"] = os.pathsep.join(map(str, folders))
    else:
        env.pop("PYTHONPATH", None)
    return env


def installed_roots() -> list[Path]:
    """Folders this interpreter installs into or ships with: site-packages (system, virtualenv, user) and
    the standard library."""
    paths = sysconfig.get_paths()
    roots = [paths.get(k) for k in ("purelib", "platlib", "stdlib", "platstdlib")]
    roots += list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        roots.append(site.getusersitepackages())
    out: list[Path] = []
    for r in roots:
        if r and Path(r) not in out:
            out.append(Path(r))
    return out


def code_agents(data: Any) -> list[str]:
    """The ``module:Class`` agent kinds a parsed recipe names, in order, without repeats."""
    out: list[str] = []
    candidates = data.get("candidates") if isinstance(data, dict) else None
    for cand in candidates if isinstance(candidates, list) else []:
        kind = cand.get("agent") if isinstance(cand, dict) else None
        if isinstance(kind, str) and ":" in kind and kind not in out:
            out.append(kind)
    return out


def _probe(modules: list[str], *, env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-P", "-c", _PROBE, *modules],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=str(cwd),
        timeout=60,
        check=False,
    )
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UntrustedCode([f"cannot check where the recipe's code comes from: {tail}"])
    return json.loads(proc.stdout)


def _judge(
    kind: str, found: dict[str, Any] | None, trusted: list[Path], writable: list[Path]
) -> str | None:
    """Why ``kind`` may not run (None: it may), from where its top-level module would be found."""
    module = kind.partition(":")[0]
    hint = "install it (pip install ...) or start the console with --plugins-dir FOLDER holding it"
    if found is None:
        return f"agent `{kind}`: no module {module!r} is installed; {hint}"
    if "error" in found:
        return f"agent `{kind}`: {module!r} cannot be located ({found['error']}); {hint}"
    origin = found.get("origin")
    if origin in ("built-in", "frozen"):
        return None
    places = [Path(p) for p in (found.get("locations") or ([origin] if origin else []))]
    for place in places:
        for folder in writable:
            if inside(place, folder):
                return (
                    f"agent `{kind}`: {module!r} would be imported from {place}, inside {folder}, which the "
                    "console writes to; code there is never run"
                )
    if places and all(any(inside(p, root) for root in trusted) for p in places):
        return None
    if found.get("distributions"):  # an editable install lives outside site-packages
        return None
    where = ", ".join(map(str, places)) or "nowhere"
    return (
        f"agent `{kind}`: {module!r} would be imported from {where}, which is neither an installed "
        f"package nor a plugins folder; {hint}"
    )


def code_problems(
    kinds: Iterable[str],
    *,
    writable: Iterable[Path] = (),
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> list[str]:
    """Why each ``module:Class`` agent in ``kinds`` may not be run by a launched run (empty: all may).

    Args:
        kinds: agent kinds as a recipe writes them (``package.module:Class``).
        writable: folders the console writes to (recipes, runs); code found there is refused.
        env: the environment the run will get (default :func:`child_env`).
        cwd: the folder the run starts in (default the current one).
    """
    kinds = list(kinds)
    if not kinds:
        return []
    cwd = Path(cwd or Path.cwd())
    env = child_env(cwd=cwd) if env is None else env
    tops = sorted({k.partition(":")[0].split(".")[0] for k in kinds})
    if not all(t.isidentifier() for t in tops):
        bad = next(t for t in tops if not t.isidentifier())
        return [f"agent module {bad!r} is not a Python module name"]
    found = _probe(tops, env=env, cwd=cwd)
    trusted = [*installed_roots(), *plugin_folders(env, cwd)]
    writable = [Path(w) for w in writable]
    problems = []
    for kind in kinds:
        why = _judge(kind, found.get(kind.partition(":")[0].split(".")[0]), trusted, writable)
        if why:
            problems.append(why)
    return problems
