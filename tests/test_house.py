"""The house as the code draws it: no import cycles among bakeoff's own modules (imports inside functions
count; ``if TYPE_CHECKING:`` blocks do not), a short top level, and modules of a readable size.

Walks the source with ``ast`` — nothing is imported — so the test also covers modules a plain import never
reaches (Streamlit pages, optional backends).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The design card's top-level folders install into the bakeoff namespace (pyproject package-dir).
PACKAGES = {"bakeoff": ROOT / "bakeoff", "bakeoff.agents": ROOT / "agents", "bakeoff.eval": ROOT / "eval",
            "bakeoff.ui": ROOT / "ui"}
MAX_TOP_LEVEL = 10
MAX_LINES = 500


def project_modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            if "_vendor" in path.parts or "__pycache__" in path.parts:
                continue
            parts = [p for p in path.relative_to(folder).with_suffix("").parts if p != "__init__"]
            if prefix == "bakeoff" and parts and parts[0] in ("agents", "eval", "ui"):
                continue  # not a folder of bakeoff/ (those names map to the top-level folders)
            mods[".".join([prefix, *parts])] = path
    return mods


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imported_names(name: str, path: Path) -> set[str]:
    """Every dotted name ``path`` imports, at module level or inside functions, TYPE_CHECKING blocks left out."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    base = ".".join([*up, base] if base else up)
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    return found


def import_graph() -> dict[str, set[str]]:
    mods = project_modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        targets = set()
        for target in imported_names(name, path):
            while target and target not in mods:  # `from bakeoff.x import func` names module bakeoff.x
                target = target.rpartition(".")[0]
            if target and target != name:
                targets.add(target)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def test_the_walker_sees_function_level_imports_and_skips_type_checking(tmp_path):
    mod = tmp_path / "m.py"
    mod.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import bakeoff.hidden\n"
        "def f():\n    from bakeoff.run import store\n    import bakeoff.core\n"
    )
    names = imported_names("bakeoff.m", mod)
    assert {"bakeoff.run", "bakeoff.run.store", "bakeoff.core"} <= names
    assert "bakeoff.hidden" not in names
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    graph = import_graph()
    assert len(graph) > 60  # the walk found the project
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


def test_the_leaf_modules_import_nothing_from_the_project():
    graph = import_graph()
    for leaf in ("bakeoff.core", "bakeoff.errors", "bakeoff.io", "bakeoff.progress"):
        assert graph[leaf] == set(), f"{leaf} imports {sorted(graph[leaf])}"


def test_the_core_never_imports_the_console():
    graph = import_graph()
    offenders = {m: sorted(t for t in ts if t.startswith("bakeoff.ui")) for m, ts in graph.items()
                 if not m.startswith("bakeoff.ui")}
    assert not {m: t for m, t in offenders.items() if t}


def test_bakeoff_has_a_short_top_level():
    top = sorted(p.name for p in (ROOT / "bakeoff").glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    assert len(top) <= MAX_TOP_LEVEL, top


@pytest.mark.parametrize("name", sorted(project_modules()))
def test_modules_stay_readable(name):
    path = project_modules()[name]
    lines = sum(1 for _ in path.open(encoding="utf-8"))
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines; split it by job"
