import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from bakeoff.agents.base import AgentError, available_agents, load_agent_class
from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.run.runner import RunError, run_recipe
from bakeoff.run.store import list_runs, read_answers, read_run

HERE = Path(__file__).resolve().parent


@pytest.fixture
def plugin_dist(tmp_path, monkeypatch):
    """A real installed distribution (dist-info with entry_points.txt) that registers `echo`."""
    site = tmp_path / "site"
    (site / "toy_plugin-0.1.dist-info").mkdir(parents=True)
    (site / "toy_plugin-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: toy-plugin\nVersion: 0.1\n"
    )
    (site / "toy_plugin-0.1.dist-info" / "entry_points.txt").write_text(
        "[bakeoff.agents]\necho = toy_agents:EchoAgent\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.syspath_prepend(str(HERE))
    available_agents.cache_clear()
    load_agent_class.cache_clear()
    yield site
    available_agents.cache_clear()
    load_agent_class.cache_clear()


def make_recipe(tmp_path, candidates: str) -> Path:
    (tmp_path / "qa.jsonl").write_text(
        "\n".join(
            json.dumps({"id": f"q{i}", "question": f"what is {i}", "reference": f"what is {i}"})
            for i in range(5)
        )
        + "\n"
    )
    path = tmp_path / "r.yaml"
    path.write_text(f"name: toy\ntask: qa\neval:\n  questions: qa.jsonl\ncandidates:\n{candidates}")
    return path


def test_builtin_registered_through_entry_point():
    assert available_agents()["fewshot"].value == "bakeoff.agents.fewshot:FewShotAgent"
    assert load_agent_class("fewshot").__name__ == "FewShotAgent"


def test_entry_point_plugin_loads_validates_and_runs(plugin_dist, tmp_path):
    assert "echo" in available_agents()
    recipe = load_recipe(
        make_recipe(
            tmp_path, "  - name: e\n    agent: echo\n    prefix: ''\n  - name: z\n    agent: fewshot\n"
        )
    )
    assert type(recipe.candidates[0]).__name__ == "EchoSettings"
    path = run_recipe(
        recipe, recipe_text="x", runs_dir=tmp_path / "runs", only=["e"], console=Console(quiet=True)
    )
    info = read_run(path)
    assert info.status == "complete"
    assert info.scores["candidates"]["e"]["metrics"]["exact_match"]["mean"] == 1.0
    rows = read_answers(path)
    assert len(rows) == 5 and {r["candidate"] for r in rows} == {"e"}
    assert set(rows[0]) >= {
        "candidate",
        "question_id",
        "question",
        "reference",
        "answer",
        "latency_s",
        "prompt_tokens",
        "completion_tokens",
        "error",
    }


def test_plugin_settings_are_validated_like_builtins(plugin_dist, tmp_path):
    with pytest.raises(RecipeError) as exc:
        load_recipe(make_recipe(tmp_path, "  - name: e\n    agent: echo\n    prefix: 3\n    colour: red\n"))
    text = str(exc.value)
    assert "candidates[0].prefix" in text and "candidates[0].colour: unknown key 'colour'" in text


def test_module_class_escape_hatch(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(HERE))
    recipe = load_recipe(
        make_recipe(tmp_path, "  - name: e\n    agent: toy_agents:EchoAgent\n    prefix: 'A: '\n")
    )
    path = run_recipe(recipe, recipe_text="x", runs_dir=tmp_path / "runs", console=Console(quiet=True))
    assert read_answers(path)[0]["answer"] == "A: what is 0"


def test_escape_hatch_import_error_says_what_to_install(tmp_path):
    with pytest.raises(RecipeError) as exc:
        load_recipe(make_recipe(tmp_path, "  - name: e\n    agent: acme_agents.rag:AcmeAgent\n"))
    msg = str(exc.value)
    assert ":7:12: candidates[0].agent: cannot import 'acme_agents.rag'" in msg
    assert "Install the package that provides 'acme_agents'" in msg
    with pytest.raises(AgentError, match="not a subclass"):
        sys.path.insert(0, str(HERE))
        try:
            load_agent_class("toy_agents:NotAnAgent")
        finally:
            sys.path.remove(str(HERE))


def test_broken_agent_is_failure_as_data(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(HERE))
    recipe = load_recipe(
        make_recipe(
            tmp_path,
            "  - name: bad\n    agent: toy_agents:BrokenAgent\n  - name: ok\n    agent: toy_agents:EchoAgent\n",
        )
    )
    path = run_recipe(recipe, recipe_text="x", runs_dir=tmp_path / "runs", console=Console(quiet=True))
    info = read_run(path)
    assert info.status == "partial"  # `bad` failed (every answer an error); `ok` is the result
    assert info.scores["candidates"]["bad"]["errors"] == 5
    assert "model server on fire" in info.scores["candidates"]["bad"]["failed"]
    assert info.scores["candidates"]["bad"]["metrics"]["rougeL"]["mean"] == 0.0
    assert info.scores["candidates"]["ok"]["metrics"]["rougeL"]["mean"] == 1.0
    assert "model server on fire" in read_answers(path)[0]["error"]


def test_only_rejects_unknown_names(monkeypatch, tmp_path):
    monkeypatch.syspath_prepend(str(HERE))
    recipe = load_recipe(make_recipe(tmp_path, "  - name: e\n    agent: toy_agents:EchoAgent\n"))
    with pytest.raises(RunError, match="unknown candidates \\['nope'\\]"):
        run_recipe(
            recipe, recipe_text="x", runs_dir=tmp_path / "runs", only=["e,nope"], console=Console(quiet=True)
        )
    assert list_runs(tmp_path / "runs") == []


def test_cli_sees_entry_point_plugins(plugin_dist, tmp_path, bakeoff_cmd):
    path = make_recipe(tmp_path, "  - name: e\n    agent: echo\n")
    env = {**__import__("os").environ, "PYTHONPATH": f"{plugin_dist}:{HERE}"}
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(path), "--runs-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exact_match" in proc.stdout and "1.000" in proc.stdout


def test_an_answer_from_a_generation_keeps_its_truncation_flags_and_agent_fields():
    from bakeoff.core import Answer, Generation

    out = Generation(
        text="Ninety days.",
        latency_s=0.5,
        prompt_tokens=900,
        completion_tokens=3,
        truncated=True,
        prompt_truncated=True,
    )
    ans = Answer.from_generation("q7", out, contexts=[{"text": "c", "source": "a.md", "score": 0.9}])
    assert ans.to_dict() == {
        "question_id": "q7",
        "text": "Ninety days.",
        "latency_s": 0.5,
        "prompt_tokens": 900,
        "completion_tokens": 3,
        "error": None,
        "label": None,
        "contexts": [{"text": "c", "source": "a.md", "score": 0.9}],
        "truncated": True,
        "prompt_truncated": True,
    }
