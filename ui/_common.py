"""What every console page shares: where runs are, cached readers keyed by file modification times, and the
run picker. Logic lives in :mod:`bakeoff.ui.runs`, :mod:`~bakeoff.ui.compare`, :mod:`~bakeoff.ui.training` and friends; this module only adapts it to Streamlit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import streamlit as st

from bakeoff.run.store import RunInfo, read_answers, read_run
from bakeoff.ui.runs import run_key
from bakeoff.ui.training import TrainingLog, read_training

PAGES = {
    "runs": "views/runs.py",
    "compare": "views/compare.py",
    "training": "views/training.py",
    "chat": "views/chat.py",
    "recipes": "views/recipes.py",
    "arena": "views/arena.py",
}


def runs_dir() -> Path:
    """The run store this console shows (``bakeoff ui --runs-dir``, else ``BAKEOFF_RUNS_DIR``, else ``runs``)."""
    return Path(os.environ.get("BAKEOFF_RUNS_DIR") or "runs").resolve()


def recipes_dir() -> Path:
    """The folder *Save as* writes recipes in (``bakeoff ui --recipes-dir``, else ``BAKEOFF_RECIPES_DIR``,
    else ``recipes`` in the folder the console started in)."""
    return Path(os.environ.get("BAKEOFF_RECIPES_DIR") or "recipes").resolve()


def _stamp(*files: Path) -> tuple:
    """Modification time and size of each file (None if missing): the cache key of what was read from them."""
    out = []
    for f in files:
        try:
            st_ = f.stat()
            out.append((st_.st_mtime_ns, st_.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


@st.cache_data(show_spinner=False, max_entries=5000)
def _cached_run(path: str, stamp: tuple) -> RunInfo:
    return read_run(Path(path))


def load_run(path: Path) -> RunInfo:
    """A run folder, read once per change of its manifest or scores."""
    path = Path(path)
    info = _cached_run(str(path), _stamp(path / "manifest.json", path / "scores.json"))
    if info.status == "running":
        info = read_run(path)  # whether its process is still alive must be checked now, not cached
    return info


def load_runs() -> list[RunInfo]:
    """Every run in the store, newest first (cached per run by file times, so 100 runs load fast)."""
    root = runs_dir()
    if not root.is_dir():
        return []
    out = []
    for recipe_dir in root.iterdir():
        if not recipe_dir.is_dir() or recipe_dir.name.startswith("."):
            continue
        for run_dir in recipe_dir.iterdir():
            if run_dir.is_dir() and not run_dir.name.startswith("."):
                out.append(load_run(run_dir))
    out.sort(key=lambda r: (r.manifest_document.started_at or "", r.run_id), reverse=True)
    return out


@st.cache_data(show_spinner=False, max_entries=200)
def _cached_answers(path: str, stamp: tuple) -> list[dict[str, Any]]:
    return read_answers(Path(path))


def load_answers(info: RunInfo) -> list[dict[str, Any]]:
    """A run's answers.jsonl, read once per change."""
    return _cached_answers(str(info.path), _stamp(Path(info.path) / "answers.jsonl"))


@st.cache_data(show_spinner=False, max_entries=200)
def _cached_training(path: str, stamp: tuple) -> dict[str, TrainingLog]:
    return read_training(Path(path))


def load_training(info: RunInfo) -> dict[str, TrainingLog]:
    """A run's training logs, read once per change of any of its files."""
    root = Path(info.path) / "training"
    files = sorted(root.glob("*/*.json*")) if root.is_dir() else []
    return _cached_training(str(info.path), (tuple(map(str, files)), _stamp(*files)))


def pick_run(
    runs: list[RunInfo], *, label: str = "Run", key: str = "run_picker", help: str | None = None
) -> RunInfo | None:
    """A run selector shared by the pages: it starts at the run named in ``?run=`` or the one last opened,
    and remembers the choice for the other pages (and in the URL, so a link opens the same run)."""
    if not runs:
        return None
    keys = [run_key(r) for r in runs]
    linked = st.query_params.get("run")
    wanted = linked or st.session_state.get("current_run")
    unknown_key = f"{key}_unknown"
    if key not in st.session_state or st.session_state[key] not in keys:
        if linked and linked not in keys:
            st.session_state[unknown_key] = linked  # said on the page until another run is picked
        st.session_state[key] = wanted if wanted in keys else keys[0]
    unknown = st.session_state.get(unknown_key)
    if unknown:
        shown = str(unknown).replace("`", "'")[:200]  # from the URL: it stays inside its code span
        st.warning(
            f"There is no run `{shown}` in `{runs_dir()}` (the link names it): showing the newest run, "
            f"`{st.session_state[key]}`, instead. Pick another below."
        )
    by_key = dict(zip(keys, runs, strict=True))

    def describe(k: str) -> str:
        info = by_key[k]
        status = "" if info.status == "complete" else f"  ({info.status})"
        return f"{k}{status}"

    choice = st.selectbox(
        label,
        keys,
        key=key,
        format_func=describe,
        help=help,
        on_change=lambda: st.session_state.pop(unknown_key, None),
    )
    st.session_state["current_run"] = choice
    if st.query_params.get("run") != choice:
        st.query_params["run"] = choice
    return by_key[choice]


def open_page(name: str, run: RunInfo | None = None) -> None:
    """Go to another page, with ``run`` selected there."""
    if run is not None:
        st.session_state["current_run"] = run_key(run)
        for k in [k for k in st.session_state if str(k).endswith("run_picker")]:
            del st.session_state[k]
    st.switch_page(PAGES[name])


def no_runs_message() -> None:
    st.info(
        f"No runs in `{runs_dir()}` yet. Start one from a terminal with "
        "`bakeoff run recipes/quickstart.yaml`, or open **Recipes**, pick a recipe and press Run."
    )
