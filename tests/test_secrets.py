"""API keys come from the environment and never land in run files, logs or output."""

import json
import os
import subprocess
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from bakeoff.core import GenerationSettings
from bakeoff.models.openai_compatible import OpenAICompatibleGenerator

SECRET = "sk-test-9f8e7d6c5b4a-DO-NOT-LEAK"


def test_openai_compatible_backend_generates_and_streams():
    with FakeOpenAI(api_key=SECRET) as server:
        gen = OpenAICompatibleGenerator(server.url, "toy", api_key=SECRET)
        outs = gen.generate([[{"role": "user", "content": "hello there"}]] * 3, GenerationSettings())
        assert [o.text for o in outs] == ["echo: hello there"] * 3
        assert outs[0].completion_tokens == 3 and outs[0].error is None
        assert (
            "".join(gen.stream([{"role": "user", "content": "a b"}], GenerationSettings())).strip()
            == "echo: a b"
        )
        bad = OpenAICompatibleGenerator(server.url, "toy", api_key="wrong")
        [out] = bad.generate([[{"role": "user", "content": "x"}]], GenerationSettings())
        assert out.text == "" and "HTTP 401" in out.error  # failure as data, not an exception


def test_unreachable_server_is_an_answer_error():
    gen = OpenAICompatibleGenerator("http://127.0.0.1:9/v1", "toy", api_key="k", max_retries=0)
    [out] = gen.generate([[{"role": "user", "content": "x"}]], GenerationSettings())
    assert out.error.startswith("cannot reach http://127.0.0.1:9/v1")


@pytest.mark.reliability
def test_api_key_never_written(tmp_path, bakeoff_cmd):
    with FakeOpenAI(api_key=SECRET) as server:
        (tmp_path / "qa.jsonl").write_text(
            json.dumps({"id": "1", "question": "ping", "reference": "echo: ping"}) + "\n"
        )
        recipe = tmp_path / "r.yaml"
        recipe.write_text(
            f"name: secret\nbase_model: openai-compatible:{server.url}#toy\ntask: qa\n"
            "eval: {questions: qa.jsonl}\ncandidates:\n  - {name: remote, agent: fewshot}\n"
        )
        home = tmp_path / "home"
        # the key goes to the server OPENAI_BASE_URL names (and only there: tests/test_hostile_servers.py)
        env = {
            **os.environ,
            "OPENAI_API_KEY": SECRET,
            "OPENAI_BASE_URL": server.url,
            "BAKEOFF_HOME": str(home),
        }
        proc = subprocess.run(
            [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(tmp_path / "runs")],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        assert server.requests, "the server was never called"
    [run_dir] = list((tmp_path / "runs" / "secret").iterdir())
    assert (
        json.loads((run_dir / "scores.json").read_text())["candidates"]["remote"]["metrics"]["exact_match"][
            "mean"
        ]
        == 1.0
    )
    assert SECRET not in proc.stdout + proc.stderr
    written = [p for root in (tmp_path / "runs", home) for p in Path(root).rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), f"key leaked into {path}"
