"""The console's recipe editor logic and launcher, and chat agents rebuilt from a run (no Streamlit)."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bakeoff.recipe.load import RecipeError
from bakeoff.run.store import read_answers, read_run
from bakeoff.ui.chat import chat_problem, load_chat_agents, stream_reply
from bakeoff.ui.editor import (
    annotations,
    find_recipes,
    help_for_problem,
    save_recipe,
    schema_keys,
    validate_text,
)
from bakeoff.ui.launch import follow, launch_run
from bakeoff.ui.trusted_code import UntrustedCode

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent


def toy_recipe(tmp_path: Path, name: str = "toy", candidates: str | None = None) -> Path:
    (tmp_path / "qa.jsonl").write_text(
        '{"id": "q1", "question": "What is one?", "reference": "One."}\n'
        '{"id": "q2", "question": "What is two?", "reference": "Two."}\n'
    )
    candidates = candidates or (
        "  - name: echo\n    agent: toy_agents:EchoAgent\n    prefix: 'A: '\n"
        "  - name: broken\n    agent: toy_agents:BrokenAgent\n"
    )
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\ntask: qa\neval:\n  questions: qa.jsonl\ncandidates:\n{candidates}")
    return path


@pytest.fixture
def with_tests_on_path(monkeypatch):
    """Launched `bakeoff run` processes can import the toy agents."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    )


def test_validation_gives_the_same_located_messages_as_the_cli(tmp_path, bakeoff_cmd):
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("../data/", f"{ROOT}/data/")
    broken = text.replace("k: 3", "k: three").replace("  questions:", "  questoins:")
    path = tmp_path / "recipes" / "quickstart.yaml"
    result = validate_text(path, broken)
    assert not result.ok and len(result.problems) == 3
    save_recipe(path, broken, roots=[tmp_path / "recipes"], allow_invalid=True)
    cli = subprocess.run([*bakeoff_cmd, "validate", str(path)], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 2
    assert result.lines() == cli.stderr.splitlines()[:-1]  # the CLI adds "3 problems found"
    k_line = broken.splitlines().index("    k: three") + 1  # the shipped recipe may grow; find the line
    assert any(f":{k_line}:8: candidates[1].k: " in line for line in result.lines())
    marks = annotations(result.problems)
    assert {"row": k_line - 1, "column": 7, "type": "error"}.items() <= marks[-1].items()
    ok = validate_text(path, text)
    assert ok.ok and ok.recipe.names[:2] == ["zero-shot", "three-shot"]


def test_validation_never_imports_code_named_by_the_recipe(tmp_path):
    text = toy_recipe(
        tmp_path, candidates="  - name: x\n    agent: never_imported_pkg.agents:Agent\n    other: 1\n"
    )
    result = validate_text(text, text.read_text())
    assert "never_imported_pkg" not in sys.modules
    assert result.ok and result.recipe is None
    assert [p.path for p in result.not_imported] == ["candidates[0].agent"]
    assert result.not_imported[0].line == 7


def test_schema_help_for_keys_and_problems(tmp_path):
    keys = schema_keys()
    assert "integer" in keys["eval.limit"].type and "first N questions" in keys["eval.limit"].description
    assert "fewshot" in keys["candidates[].k"].agents and keys["candidates[].k"].default == 0
    assert keys["task"].choices == ["qa", "classification"]
    assert "fewshot" in keys["candidates[].agent"].description
    assert "`eval.limit`" in keys["eval.limit"].markdown()
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("k: 3", "k: -1")
    [problem] = validate_text(ROOT / "recipes" / "quickstart.yaml", text).problems
    assert help_for_problem(problem, keys).path == "candidates[].k"


def test_find_and_save_recipes(tmp_path):
    save_recipe(tmp_path / "a" / "one.yaml", "name: one\n", roots=[tmp_path], allow_invalid=True)
    (tmp_path / "a" / "notes.txt").write_text("x")
    found = find_recipes(
        [tmp_path / "a", tmp_path / "missing"], [tmp_path / "a" / "one.yaml", tmp_path / "gone.yaml"]
    )
    assert found == [(tmp_path / "a" / "one.yaml").resolve()]
    assert not list((tmp_path / "a").glob(".*tmp*"))


def _wait(launch, timeout=180):
    deadline = time.time() + timeout
    while time.time() < deadline:
        progress = follow(launch)
        if progress.finished:
            return progress
        time.sleep(0.5)
    raise AssertionError(f"launched run did not finish: {follow(launch)}")


def test_launch_follows_a_run_to_its_end(tmp_path, with_tests_on_path):
    recipe = toy_recipe(tmp_path)
    runs = tmp_path / "runs"
    launch = launch_run(recipe, runs, log_dir=tmp_path / "logs")
    first = follow(launch)
    assert first.stage in ("starting", "preparing", "answering", "scoring", "complete", "partial")
    progress = _wait(launch)
    # `broken` answers nothing but errors: a failed candidate, so the run ends partial (issue 17)
    assert progress.stage == "partial", progress.log_tail
    assert progress.finished and "candidate 'broken' failed" in progress.error
    assert progress.run_path.parent == runs / "toy" and progress.fraction == 1.0
    assert (progress.answered, progress.total) == (4, 4)
    assert launch.process.wait(timeout=60) == 1 and "bakeoff run" in launch.log_path.read_text()
    info = read_run(progress.run_path)
    assert info.status == "partial" and set(info.candidates) == {"echo", "broken"}


def test_launch_failure_is_reported(tmp_path, with_tests_on_path):
    recipe = toy_recipe(tmp_path, name="bad")
    launch = launch_run(recipe, tmp_path / "runs", log_dir=tmp_path / "logs", only=["not_a_candidate_xyz"])
    progress = _wait(launch)
    assert progress.stage == "failed" and progress.run_path is None
    assert "exited with code 2" in progress.error and "not_a_candidate_xyz" in progress.log_tail
    # code that is not installed anywhere is refused before anything starts, naming the module
    bad = toy_recipe(tmp_path, name="worse", candidates="  - name: x\n    agent: not_a_real_module_xyz:Agent\n")
    with pytest.raises(UntrustedCode) as refused:
        launch_run(bad, tmp_path / "runs", log_dir=tmp_path / "logs")
    [why] = refused.value.problems
    assert "no module 'not_a_real_module_xyz' is installed" in why and "--plugins-dir" in why
    assert not (tmp_path / "runs" / "worse").exists()
    with pytest.raises(RecipeError):
        launch_run(toy_recipe(tmp_path, name="worse", candidates="  - name: x\n"), tmp_path / "runs")


def test_chat_agents_from_a_run_and_why_one_cannot_chat(tmp_path, with_tests_on_path):
    recipe = toy_recipe(tmp_path)
    progress = _wait(launch_run(recipe, tmp_path / "runs", log_dir=tmp_path / "logs"))
    info = read_run(progress.run_path)
    assert read_answers(info.path)
    loaded = load_chat_agents(info, ["echo", "broken"])
    assert list(loaded.agents) == ["echo"]
    assert "does not support chat" in loaded.problems["broken"]
    assert chat_problem(loaded.agents["echo"]) is None
    reply = "".join(stream_reply(loaded.agents["echo"], [{"role": "user", "content": "hello"}]))
    assert reply == "A: hello"
    # the recipe file moved away: relative paths fall back to the run folder, and the reason is given
    recipe.unlink()
    (tmp_path / "qa.jsonl").unlink()
    moved = load_chat_agents(read_run(progress.run_path), ["echo"])
    assert not moved.agents and "no longer validates" in moved.problems["echo"]
