"""The served model evaluated: a fine-tune's GGUF forms answer as candidates of their own in the same run.

Real training (a few LoRA steps on the embedded SmolLM2), the real merge → llama.cpp convert → quantize, the
GGUF answered in-process by llama.cpp and — through the repository's local Ollama stand-in running the same
GGUF with llama.cpp (tests/fake_ollama.py ``LlamaCppResponder``) — through the Ollama API.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from fake_ollama import FakeOllama, LlamaCppResponder
from rich.console import Console

from bakeoff.eval.served import served_warnings
from bakeoff.recipe.load import load_recipe
from bakeoff.run.documents.scores import Scores
from bakeoff.run.runner import run_recipe

ROOT = Path(__file__).resolve().parent.parent
N_QUESTIONS = 16
TRAIN = {
    "data": {"kind": "instruct", "path": str(ROOT / "data" / "contract-train.jsonl"), "limit": 40},
    "max_steps": 8,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "eval_every": 4,
    "max_length": 128,
}


def _recipe(tmp_path: Path, serve: dict, *, ollama_host: str | None = None) -> Path:
    recipe = {
        "name": "served-test",
        "base_model": "embedded:smollm2-135m-instruct",
        "task": "qa",
        "eval": {
            "questions": str(ROOT / "data" / "contract-qa.jsonl"),
            "limit": N_QUESTIONS,
            "metrics": ["rougeL"],
        },
        "candidates": [
            {
                "name": "lora",
                "agent": "finetuned",
                "train": TRAIN,
                "generation": {"max_new_tokens": 32, "batch_size": 16},
                "serve": serve,
            }
        ],
    }
    if ollama_host:
        recipe["ollama_host"] = ollama_host
    path = tmp_path / "served.yaml"
    path.write_text(json.dumps(recipe))  # JSON is YAML
    return path


def _run(path: Path, runs: Path) -> tuple[Path, str]:
    out = io.StringIO()
    recipe = load_recipe(path)
    run = run_recipe(
        recipe, recipe_text=path.read_text(), runs_dir=runs, console=Console(file=out, width=200)
    )
    return run, out.getvalue()


def _answers(run: Path) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for line in (run / "answers.jsonl").read_text().splitlines():
        row = json.loads(line)
        assert not row.get("error"), row
        out.setdefault(row["candidate"], {})[row["question_id"]] = row["answer"]
    return out


@pytest.fixture(scope="module")
def responder():
    r = LlamaCppResponder()
    yield r
    r.close()


@pytest.fixture(scope="module")
def ollama_run(tmp_path_factory, responder):
    tmp = tmp_path_factory.mktemp("served-ollama")
    with FakeOllama(responder=responder) as fake:
        run, printed = _run(_recipe(tmp, {"forms": ["q8_0"]}, ollama_host=fake.url), tmp / "runs")
        creates = fake.calls("POST", "/api/create")
    return run, printed, creates, tmp


def test_served_forms_are_registered_and_answered_through_ollama(ollama_run):
    run, printed, creates, _ = ollama_run
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    served = manifest["served"]
    assert set(served) == {"lora@q8_0", "lora@ollama-q8_0"}
    local, remote = served["lora@q8_0"], served["lora@ollama-q8_0"]
    assert local["engine"] == "llama.cpp" and remote["engine"] == "ollama"
    assert local["gguf"].endswith("lora.q8_0.gguf") and Path(local["gguf"]).is_file()
    assert local["cache_hit"] is False and local["sha256"] == remote["sha256"]
    # Registered with the explicit ChatML template and its stop token, as registration always does.
    assert len(creates) == 1
    sent = creates[0]
    assert sent["model"] == remote["ollama_model"].removesuffix(":latest")
    assert "<|im_start|>" in sent["template"] and "<|im_end|>" in sent["parameters"]["stop"]
    assert remote["template"] == sent["template"]
    assert remote["parity"]["n"] == N_QUESTIONS
    # Every candidate answered every question; the same GGUF, greedy, through llama.cpp in-process and
    # through the Ollama API, gives the same answers when the template is right.
    answers = _answers(run)
    assert {len(v) for v in answers.values()} == {N_QUESTIONS}
    assert answers["lora@ollama-q8_0"] == answers["lora@q8_0"]
    scores = Scores.read(run / "scores.json")
    for name in ("lora@q8_0", "lora@ollama-q8_0"):
        p = scores.served[name]
        assert p.candidate == "lora" and p.n == N_QUESTIONS and p.metric == "rougeL"
        same = sum(answers[name][q].strip() == answers["lora"][q].strip() for q in answers["lora"])
        assert p.identical == same and p.identical_share == pytest.approx(same / N_QUESTIONS, abs=1e-4)
        assert p.ci is not None and p.ci[0] <= p.delta <= p.ci[1] and 0 < p.p <= 1
        assert p.diagnosis is None  # a right template: no outright failure
    assert manifest["candidates"]["lora@ollama-q8_0"]["served"]["ollama_model"] == remote["ollama_model"]
    assert "lora@q8_0: lora.q8_0.gguf" in printed


@pytest.fixture(scope="module")
def wrong_template_run(ollama_run, responder):
    """A second run of the same fine-tune whose Ollama form is registered with a plain ``{{ .Prompt }}``."""
    _, _, _, tmp = ollama_run
    with FakeOllama(responder=responder) as fake:
        run, printed = _run(
            _recipe(tmp, {"forms": ["q8_0"], "ollama_template": "{{ .Prompt }}"}, ollama_host=fake.url),
            tmp / "runs",
        )
        creates = fake.calls("POST", "/api/create")
    return run, printed, creates


def test_a_wrong_ollama_template_is_diagnosed_and_the_export_is_reused(wrong_template_run):
    run, printed, creates = wrong_template_run
    assert creates[0]["template"] == "{{ .Prompt }}"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["served"]["lora@q8_0"]["cache_hit"] is True  # the first run's export, reused
    assert "cache hit, reused" in printed
    scores = Scores.read(run / "scores.json")
    bad = scores.served["lora@ollama-q8_0"]
    assert bad.diagnosis is not None and bad.diagnosis.template == "{{ .Prompt }}"
    d = bad.diagnosis
    assert (
        d.n == N_QUESTIONS
        and d.share >= 0.5
        and d.to_token_limit + d.role_markers + d.empty >= N_QUESTIONS / 2
    )
    assert bad.significant_drop and bad.delta < 0 and bad.ci[1] < 0
    assert bad.cause == "template/EOS mismatch"
    assert bad.most_changed and bad.most_changed[0].delta < 0
    assert scores.served["lora@q8_0"].diagnosis is None  # the same file with its own template is fine
    warnings = served_warnings(scores)
    assert len(warnings) == 1
    line = warnings[0]
    assert line.startswith(f"lora@ollama-q8_0: −{abs(bad.delta):.2f} [") and " vs lora on rougeL" in line
    assert "template/EOS mismatch" in line and "'{{ .Prompt }}'" in line and "most changed:" in line
    assert manifest["served"]["lora@ollama-q8_0"]["parity"]["cause"] == "template/EOS mismatch"


def test_show_report_and_console_group_the_served_forms(
    wrong_template_run, bakeoff_cmd, monkeypatch, tmp_path
):
    import subprocess

    from streamlit.testing.v1 import AppTest

    run, _, _ = wrong_template_run
    proc = subprocess.run(
        [*bakeoff_cmd, "show", str(run)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "served model" in proc.stdout and "lora@ollama-q8_0" in proc.stdout
    # the loss is named under the verdict (a warning line), once
    warning = next(line for line in proc.stdout.splitlines() if "lora@ollama-q8_0: −" in line)
    assert "warning" in warning and proc.stdout.count("lora@ollama-q8_0: −") == 1
    assert "template/EOS mismatch" in proc.stdout
    report = tmp_path / "report.md"
    proc = subprocess.run(
        [*bakeoff_cmd, "report", str(run), "--format", "md", "--output", str(report)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    text = report.read_text()
    assert "## Served model" in text and "lora@ollama-q8_0 — most changed answers" in text
    # The console's Compare page groups the candidate with its served forms.
    monkeypatch.setenv("BAKEOFF_RUNS_DIR", str(run.parent.parent))
    monkeypatch.chdir(ROOT)
    at = AppTest.from_file(str(ROOT / "ui" / "app.py"), default_timeout=120)
    at.query_params["run"] = f"{run.parent.name}/{run.name}"
    at.run()
    at.switch_page("views/compare.py").run()
    assert not at.exception, at.exception[0].value
    assert "Served model · lora and its served forms" in [h.value for h in at.subheader]
    served_forms = list(at.dataframe[0].value["served form"])
    assert served_forms == ["lora@q8_0", "lora@ollama-q8_0"]
    assert any("template/EOS mismatch" in w.value for w in at.warning)


@pytest.mark.slow
def test_f16_and_q8_0_through_llama_cpp_and_a_rerun_reuses_the_exports(tmp_path, bakeoff_cmd):
    import subprocess

    recipe = _recipe(tmp_path, {"forms": ["f16", "q8_0"]})
    runs = tmp_path / "runs"
    env = {**os.environ, "BAKEOFF_HOME": str(tmp_path / "home")}  # no export of this adapter exists yet
    results = []
    for _ in range(2):
        proc = subprocess.run(
            [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
        )
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
        run = sorted(p for p in (runs / "served-test").iterdir() if p.is_dir())[-1]
        results.append((run, proc.stdout))
    (first, _), (second, printed) = results
    assert first != second
    for run, hit in ((first, False), (second, True)):
        manifest = json.loads((run / "manifest.json").read_text())
        assert set(manifest["served"]) == {"lora@f16", "lora@q8_0"}
        for facts in manifest["served"].values():
            assert facts["cache_hit"] is hit and facts["engine"] == "llama.cpp"
            assert facts["parity"]["n"] == N_QUESTIONS and facts["parity"]["ci"] is not None
        scores = Scores.read(run / "scores.json")
        assert set(scores.served) == {"lora@f16", "lora@q8_0"}
        assert scores.served["lora@f16"].identical_share is not None
    assert printed.count("cache hit, reused") == 2
    assert "served model" in printed
