"""Issue 17 findings 6 and 8: hostile recipes, question files and corpora give one located line and exit 2,
never a traceback."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI

from bakeoff.questions import MAX_QUESTION_CHARS, DataError, load_questions, read_records

QA = json.dumps({"id": "1", "question": "ping", "reference": "echo: ping"}) + "\n"


def _bakeoff(cmd, *args, cwd=None, env=None, timeout=120):
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def _one_located_line(proc, *fragments):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    # a runtime error reads "error: ..."; a recipe problem "file:line:col: field: ..."
    assert lines and re.match(r"error: |\S+:\d+(:\d+)?: ", lines[0]), proc.stderr
    for fragment in fragments:
        assert fragment in proc.stderr, proc.stderr


def _recipe(tmp_path: Path, body: str, questions: str = QA) -> Path:
    (tmp_path / "qa.jsonl").write_text(questions, encoding="utf-8")
    path = tmp_path / "r.yaml"
    path.write_text("name: hostile\ntask: qa\neval: {questions: qa.jsonl}\n" + body)
    return path


@pytest.mark.parametrize("agent", [".x:Y", ":X", "x:", "a..b:C", "x:Y.Z"])
def test_a_malformed_module_agent_is_one_located_line(tmp_path, bakeoff_cmd, agent):
    recipe = _recipe(tmp_path, f"candidates:\n  - {{name: c, agent: '{agent}'}}\n")
    proc = _bakeoff(bakeoff_cmd, "validate", recipe)
    _one_located_line(proc, "r.yaml:", "package.module:Class")


def test_a_negative_statistics_seed_is_refused_before_answering(tmp_path, bakeoff_cmd):
    recipe = _recipe(
        tmp_path,
        "eval: {questions: qa.jsonl, statistics: {seed: -1}}\ncandidates: [{name: c, agent: fewshot}]\n",
    )
    recipe.write_text(recipe.read_text().replace("eval: {questions: qa.jsonl}\n", "", 1))
    _one_located_line(_bakeoff(bakeoff_cmd, "validate", recipe), "r.yaml:", "seed")


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
def test_fail_below_must_be_a_number(tmp_path, bakeoff_cmd, value):
    recipe = _recipe(tmp_path, "candidates: [{name: c, agent: fewshot}]\n")
    recipe.write_text(
        recipe.read_text().replace("{questions: qa.jsonl}", f"{{questions: qa.jsonl, fail_below: {value}}}")
    )
    _one_located_line(_bakeoff(bakeoff_cmd, "validate", recipe), "r.yaml:", "fail_below")


def test_a_questions_path_that_is_a_folder_says_so(tmp_path, bakeoff_cmd):
    recipe = _recipe(tmp_path, "candidates: [{name: c, agent: fewshot}]\n")
    (tmp_path / "folder").mkdir()
    recipe.write_text(recipe.read_text().replace("qa.jsonl", "folder"))
    _one_located_line(_bakeoff(bakeoff_cmd, "validate", recipe), "is a folder")
    with pytest.raises(DataError, match="is a folder"):
        read_records(tmp_path / "folder")


def test_json_nested_100k_deep_is_one_located_line(tmp_path, bakeoff_cmd):
    deep = tmp_path / "deep.jsonl"
    deep.write_text(QA + '{"question": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(DataError, match=r"deep.jsonl:2: JSON nested too deeply"):
        read_records(deep)
    proc = _bakeoff(bakeoff_cmd, "leakage", deep, deep)
    _one_located_line(proc, "deep.jsonl:2:", "nested too deeply")
    recipe = _recipe(tmp_path, "candidates: [{name: c, agent: fewshot}]\n", questions=deep.read_text())
    proc = _bakeoff(bakeoff_cmd, "run", recipe, "--runs-dir", tmp_path / "runs")
    _one_located_line(proc, "qa.jsonl:2:", "nested too deeply")


def test_a_byte_order_mark_in_a_questions_file_is_read(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + QA.encode())
    [q] = load_questions(path, task="qa")
    assert (q.id, q.question) == ("1", "ping")


def test_a_5_mb_question_is_cut_and_reported_without_stalling_its_batch(tmp_path, bakeoff_cmd):
    huge = "why " * (5 * 1024 * 1024 // 4)
    rows = [
        {"id": "big", "question": huge, "reference": "x"},
        {"id": "1", "question": "ping", "reference": "echo: ping"},
    ]
    notes: list[str] = []
    path = tmp_path / "q.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    big, _ = load_questions(path, task="qa", notes=notes)
    assert len(big.question) == MAX_QUESTION_CHARS
    assert notes == [f"{path}:1: question 'big' is {len(huge):,} characters; cut to the first 20,000"]
    with FakeOpenAI() as server:
        recipe = _recipe(
            tmp_path,
            f"base_model: openai-compatible:{server.url}#toy\ncandidates: [{{name: remote, agent: fewshot}}]\n",
            questions=path.read_text(),
        )
        proc = _bakeoff(bakeoff_cmd, "run", recipe, "--runs-dir", tmp_path / "runs", timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert (
            max(len(m["content"]) for r in server.requests for m in r["messages"]) < MAX_QUESTION_CHARS + 2000
        )
    assert "cut to the first 20,000" in proc.stdout
    [run] = (tmp_path / "runs" / "hostile").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert any("question 'big'" in n for n in manifest["notes"])


@pytest.mark.slow  # embeds a corpus twice (index, then run): minutes on a busy 2-core machine
@pytest.mark.reliability
def test_a_corpus_link_outside_the_project_is_skipped_by_index_and_run(tmp_path, bakeoff_cmd):
    project = tmp_path / "p"
    (project / "docs").mkdir(parents=True)
    (project / ".git").mkdir()
    (tmp_path / "private.md").write_text("secret salary table")
    (project / "docs" / "leak.md").symlink_to(tmp_path / "private.md")
    (project / "docs" / "terms.md").write_text("Invoices are due in 30 days.")
    recipe = _recipe(project, "corpus: {paths: [docs]}\ncandidates: [{name: c, agent: fewshot}]\n")
    env = {k: v for k, v in os.environ.items() if k != "BAKEOFF_ALLOW_OUTSIDE"}
    env["BAKEOFF_HOME"] = str(tmp_path / "home")
    proc = _bakeoff(bakeoff_cmd, "index", recipe, cwd=project, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    out = proc.stdout + proc.stderr
    assert "docs/leak.md" in out and "outside the project" in out
    assert "private.md" not in out  # the message names the link, not its target
    with FakeOpenAI() as server:  # `run` skips it too, with a note, instead of failing the run
        recipe.write_text(
            recipe.read_text().replace(
                "candidates: [{name: c, agent: fewshot}]",
                f"candidates: [{{name: c, agent: rag, model: 'openai-compatible:{server.url}#toy'}}]",
            )
        )
        proc = _bakeoff(
            bakeoff_cmd, "run", recipe, "--runs-dir", project / "runs", cwd=project, env=env, timeout=300
        )
        assert proc.returncode == 0, proc.stderr
        prompts = " ".join(m["content"] for r in server.requests for m in r["messages"])
    assert "secret salary" not in prompts and "Invoices are due" in prompts
    [run] = (project / "runs" / "hostile").iterdir()
    notes = json.loads((run / "manifest.json").read_text())["notes"]
    assert any("skipped docs/leak.md" in n and "outside the project" in n for n in notes), notes
