"""No code runs that nobody asked for (issue 17, finding 1): a `.py` file beside a recipe is never imported by
*Run* or by `python -m bakeoff`, `module:Class` agents launched from the console come only from installed
packages or a plugins folder, and live validation never imports a recipe's module (not even for a sweep)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bakeoff.ui.editor import validate_text
from bakeoff.ui.launch import launch_run, run_command
from bakeoff.ui.trusted_code import UntrustedCode, _judge, child_env, code_agents, code_problems

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def _plant(folder: Path, module: str = "evilmod2") -> Path:
    """A module that leaves a marker file when imported, and a recipe naming it as an agent."""
    marker = folder / f"{module}-was-imported"
    (folder / f"{module}.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    (folder / "qa.jsonl").write_text('{"id": "q1", "question": "One?", "reference": "One."}\n')
    (folder / "evil.yaml").write_text(
        f"name: evil\neval:\n  questions: qa.jsonl\ncandidates:\n  - name: x\n    agent: '{module}:X'\n"
    )
    return marker


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


@pytest.mark.parametrize("command", ["validate", "run"])
def test_python_m_bakeoff_does_not_import_a_module_from_the_folder_it_runs_in(tmp_path, command):
    marker = _plant(tmp_path)
    args = [sys.executable, "-m", "bakeoff", command, "evil.yaml"]
    if command == "run":
        args += ["--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.run(args, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300)
    assert not marker.exists(), "python -m bakeoff imported a module from its working folder"
    assert proc.returncode == 2 and "cannot import 'evilmod2'" in proc.stderr
    assert "Traceback" not in proc.stderr
    # the same module on a PYTHONPATH the user set is the user's choice, and is imported
    named = subprocess.run(
        [sys.executable, "-m", "bakeoff", "validate", "evil.yaml"],
        cwd=tmp_path,
        env=_env(PYTHONPATH=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert marker.exists() and "evilmod2" in named.stderr  # imported (then rejected: X is not defined)


def test_python_m_bakeoff_still_runs_from_the_project_folder(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "bakeoff", "--help"], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0 and "validate" in proc.stdout


def test_a_run_started_the_console_way_cannot_import_the_recipe_folder(tmp_path):
    """Even started in the recipe's own folder (the worst case), the console's run command imports nothing
    from it: `-P` keeps the working folder off sys.path."""
    marker = _plant(tmp_path)
    cmd = run_command(tmp_path / "evil.yaml", tmp_path / "runs")
    assert cmd[1:4] == ["-P", "-m", "bakeoff"]
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=child_env(_env()), capture_output=True, text=True, timeout=300
    )
    assert not marker.exists()
    assert proc.returncode == 2 and "cannot import 'evilmod2'" in proc.stderr


def test_launch_refuses_code_beside_the_recipe_before_anything_starts(tmp_path, monkeypatch):
    marker = _plant(tmp_path)
    monkeypatch.chdir(tmp_path)  # the console started in the recipe's folder
    monkeypatch.delenv("PYTHONPATH", raising=False)
    with pytest.raises(UntrustedCode) as refused:
        launch_run(tmp_path / "evil.yaml", tmp_path / "runs", log_dir=tmp_path / "logs")
    assert refused.value.problems == [
        "agent `evilmod2:X`: no module 'evilmod2' is installed; install it (pip install ...) or start the "
        "console with --plugins-dir FOLDER holding it"
    ]
    assert not marker.exists() and not (tmp_path / "runs").exists() and not (tmp_path / "logs").exists()


def test_code_in_a_folder_the_console_writes_to_is_refused_even_on_the_path(tmp_path):
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    marker = _plant(recipes)
    env = child_env(_env(PYTHONPATH=str(recipes)))
    [why] = code_problems(["evilmod2:X"], writable=[recipes], env=env, cwd=tmp_path)
    assert "inside" in why and "which the console writes to" in why and str(recipes) in why
    assert not marker.exists()  # located, never imported


def test_installed_and_plugin_code_is_allowed(tmp_path):
    env = child_env(_env(PYTHONPATH=str(TESTS)))
    kinds = ["streamlit:X", "bakeoff.agents.base:Agent", "json:JSONDecoder", "toy_agents:EchoAgent"]
    assert code_problems(kinds, writable=[tmp_path], env=env, cwd=tmp_path) == []
    [missing] = code_problems(["toy_agents:EchoAgent"], env=child_env(_env()), cwd=tmp_path)
    assert "no module 'toy_agents' is installed" in missing
    assert code_problems([".x:Y"], env=env, cwd=tmp_path) == ["agent module '' is not a Python module name"]


def test_code_found_outside_every_trusted_place_is_refused(tmp_path):
    found = {"origin": str(tmp_path / "stray.py"), "locations": [], "distributions": []}
    why = _judge("stray:X", found, trusted=[tmp_path / "site-packages"], writable=[])
    assert "neither an installed package nor a plugins folder" in why
    editable = {**found, "distributions": ["someproject"]}  # an editable install lives outside site-packages
    assert _judge("stray:X", editable, trusted=[], writable=[]) is None


def test_child_env_keeps_only_absolute_python_paths_and_drops_the_console_token(tmp_path):
    entries = os.pathsep.join(["", "plugins", str(tmp_path / "abs")])
    env = child_env({"PYTHONPATH": entries, "BAKEOFF_UI_TOKEN": "t", "A": "1"}, cwd=tmp_path)
    assert env["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "plugins"), str(tmp_path / "abs")]
    assert "BAKEOFF_UI_TOKEN" not in env and env["A"] == "1"
    assert "PYTHONPATH" not in child_env({"PYTHONPATH": os.pathsep}, cwd=tmp_path)


def test_code_agents_lists_module_class_kinds_once():
    data = {"candidates": [{"agent": "a.b:C"}, {"agent": "fewshot"}, {"agent": "a.b:C"}, "x", {"agent": 3}]}
    assert code_agents(data) == ["a.b:C"]
    assert code_agents({"candidates": "nope"}) == [] and code_agents([]) == []


def test_live_validation_never_imports_a_recipes_module_even_for_a_sweep(tmp_path, monkeypatch):
    marker = tmp_path / "sweepmod-was-imported"
    (tmp_path / "sweepmod.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n")
    (tmp_path / "qa.jsonl").write_text('{"id": "q1", "question": "One?", "reference": "One."}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "sweepmod", raising=False)
    text = (
        "name: s\neval:\n  questions: qa.jsonl\ncandidates:\n"
        "  - name: x\n    agent: sweepmod:X\n    sweep: {k: [1, 2]}\n"
    )
    result = validate_text(tmp_path / "s.yaml", text)
    assert not marker.exists() and "sweepmod" not in sys.modules
    assert [p.path for p in result.not_imported] == ["candidates[0].agent"]


def test_ui_refuses_a_plugins_folder_the_console_writes_to(tmp_path, bakeoff_cmd):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "recipes" / "code").mkdir(parents=True)
    cases = [(tmp_path / "recipes" / "code", "which the console writes to"), (tmp_path / "nope", "no such")]
    for folder, says in cases:
        proc = subprocess.run(
            [
                *bakeoff_cmd,
                "ui",
                "--recipes-dir",
                str(tmp_path / "recipes"),
                "--plugins-dir",
                str(folder),
                "--runs-dir",
                str(tmp_path / "runs"),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert says in proc.stderr and proc.stderr.startswith("error: ")
