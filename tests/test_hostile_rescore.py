"""Issue 17 finding 3: ``bakeoff score`` on a torn or corrupt answers.jsonl stops at the bad line (file:line), or
with ``--skip-bad-lines`` scores the readable rows and says how many it dropped."""

import json
import os
import subprocess

import pytest
from fake_openai import FakeOpenAI

from bakeoff.run.store import RunStoreError, read_answers_checked


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, bakeoff_cmd_module):
    tmp = tmp_path_factory.mktemp("rescore")
    (tmp / "qa.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i}", "question": f"p{i}", "reference": f"echo: p{i}"}) + "\n"
            for i in range(8)
        )
    )
    with FakeOpenAI() as server:
        (tmp / "r.yaml").write_text(
            f"name: rescore\ntask: qa\nbase_model: openai-compatible:{server.url}#toy\n"
            "eval: {questions: qa.jsonl, metrics: [exact_match]}\ncandidates: [{name: remote, agent: fewshot}]\n"
        )
        proc = subprocess.run(
            [*bakeoff_cmd_module, "run", str(tmp / "r.yaml"), "--runs-dir", str(tmp / "runs")],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    [run] = (tmp / "runs" / "rescore").iterdir()
    return run


@pytest.fixture(scope="module")
def bakeoff_cmd_module():
    import sys
    from pathlib import Path

    exe = Path(sys.executable).with_name("bakeoff")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bakeoff"]


def _score(cmd, run, *extra):
    return subprocess.run(
        [*cmd, "score", str(run), "--runs-dir", str(run.parent.parent), *extra],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


@pytest.mark.parametrize(
    "damage, line, why",
    [
        (lambda lines: lines[:-1] + [lines[-1][: len(lines[-1]) // 2]], 8, "torn last line"),
        (lambda lines: lines[:3] + ["{not json\n"] + lines[3:], 4, "not a JSON object"),
        (lambda lines: lines[:2] + ['["a", "list"]\n'] + lines[2:], 3, "not an answer row"),
    ],
)
def test_a_bad_answers_line_stops_scoring_at_its_location(
    finished_run, bakeoff_cmd_module, tmp_path, damage, line, why
):
    import shutil

    run = tmp_path / "runs" / "rescore" / finished_run.name
    shutil.copytree(finished_run, run)
    answers = run / "answers.jsonl"
    original = answers.read_text().splitlines(keepends=True)
    answers.write_text("".join(damage(original)))
    scores_before = (run / "scores.json").read_bytes()
    proc = _score(bakeoff_cmd_module, run)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"answers.jsonl:{line}: {why}" in proc.stderr and "Traceback" not in proc.stderr
    assert (run / "scores.json").read_bytes() == scores_before  # not overwritten
    proc = _score(bakeoff_cmd_module, run, "--skip-bad-lines")
    assert proc.returncode == 0, proc.stderr
    scores = json.loads((run / "scores.json").read_text())
    assert scores["dropped_lines"] == 1
    assert "1 unreadable answer line(s) dropped" in proc.stdout.replace("\n", " ")
    kept = 7 if why == "torn last line" else 8
    assert scores["candidates"]["remote"]["n"] == kept


def test_a_clean_file_reads_whole(finished_run):
    rows, dropped = read_answers_checked(finished_run)
    assert (len(rows), dropped) == (8, 0)
    (finished_run.parent / "empty").mkdir()
    (finished_run.parent / "empty" / "answers.jsonl").write_text("")
    with pytest.raises(RunStoreError, match="no readable answers"):
        read_answers_checked(finished_run.parent / "empty")
