"""Crash safety: kill -9 mid-answering, then `bakeoff run --resume` reuses finished work and ends equal to an
uninterrupted run (greedy decoding, fixed batch boundaries)."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bakeoff.run.store import read_answers, read_run

ROOT = Path(__file__).resolve().parent.parent

RECIPE = f"""\
name: resume-demo
task: qa
eval:
  questions: {ROOT}/data/contract-qa.jsonl
  limit: 12
candidates:
  - name: zero-shot
    agent: fewshot
    generation: {{max_new_tokens: 20, batch_size: 4}}
  - name: two-shot
    agent: fewshot
    k: 2
    examples: {ROOT}/data/contract-examples.jsonl
    generation: {{max_new_tokens: 20, batch_size: 4}}
"""


def _answers(run_dir: Path) -> dict:
    return {(r["candidate"], r["question_id"]): r["answer"] for r in read_answers(run_dir)}


def _kill_when_answers_appear(cmd, runs: Path, pattern: str, env=None) -> Path:
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        deadline = time.time() + 300
        while time.time() < deadline:
            found = list(runs.glob(pattern))
            if found and found[0].stat().st_size > 0:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                return found[0]
            time.sleep(0.05)
        raise AssertionError("the run never started answering")
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.reliability
def test_kill_then_resume_reuses_finished_batches(tmp_path, bakeoff_cmd):
    """Fast version with a toy agent: which batches are answered again is visible in a call log."""
    here = Path(__file__).resolve().parent
    (tmp_path / "qa.jsonl").write_text(
        "".join(
            json.dumps({"id": f"q{i:02d}", "question": f"question {i}", "reference": f"question {i}"}) + "\n"
            for i in range(12)
        )
    )
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        "name: toy\ntask: qa\neval: {questions: qa.jsonl}\ncandidates:\n"
        "  - {name: slow, agent: 'toy_agents:SlowEchoAgent', generation: {batch_size: 4}}\n"
    )
    runs, log = tmp_path / "runs", tmp_path / "calls.log"
    env = {**os.environ, "PYTHONPATH": str(here), "TOY_CALL_LOG": str(log), "TOY_DELAY": "1.0"}
    answers = _kill_when_answers_appear(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)], runs, "toy/*/answers.jsonl", env
    )
    first = log.read_text().splitlines()
    assert first[0] == "q00,q01,q02,q03"
    kept = len(read_answers(answers.parent))
    assert kept == 4
    log.unlink()
    res = subprocess.run(
        [*bakeoff_cmd, "run", "--resume", answers.parent.name, "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        env={**env, "TOY_DELAY": "0"},
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    # the finished batch is not asked again; the rest is
    assert log.read_text().splitlines() == ["q04,q05,q06,q07", "q08,q09,q10,q11"]
    info = read_run(answers.parent)
    assert info.status == "complete"
    exact = info.scores["candidates"]["slow"]["metrics"]["exact_match"]
    assert (exact["mean"], exact["n"], exact["missing"]) == (1.0, 12, 0)
    assert len(read_answers(answers.parent)) == 12


@pytest.mark.slow
@pytest.mark.reliability
def test_kill_then_resume_equals_uninterrupted_run(tmp_path, bakeoff_cmd, embedded_generator):
    recipe = tmp_path / "resume-demo.yaml"
    recipe.write_text(RECIPE)
    runs = tmp_path / "runs"
    # 1. interrupted run: kill -9 as soon as the first batch of answers is on disk
    answers_file = _kill_when_answers_appear(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)], runs, "resume-demo/*/answers.jsonl"
    )
    run_dir = answers_file.parent
    with answers_file.open("a") as fh:  # simulate a crash mid-append: a torn last line
        fh.write('{"candidate": "zero-shot", "question_id": "q0')
    before = read_answers(run_dir)
    assert 0 < len(before) < 24
    assert read_run(run_dir).status == "interrupted"

    # 2. resume: finished answers are kept, the rest is generated, the run completes
    res = subprocess.run(
        [*bakeoff_cmd, "run", "--resume", run_dir.name, "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"{len(before)} answers already on disk are kept" in res.stdout
    info = read_run(run_dir)
    assert info.status == "complete" and info.manifest["resumed_at"]
    resumed = _answers(run_dir)
    assert len(resumed) == 24
    for row in before:  # the kept answers were not regenerated
        assert resumed[(row["candidate"], row["question_id"])] == row["answer"]
    lines = (run_dir / "answers.jsonl").read_text().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn line was cut, not left in the middle

    # 3. an uninterrupted run of the same recipe gives the same answers and scores
    fresh = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(tmp_path / "runs2")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    [fresh_dir] = list((tmp_path / "runs2" / "resume-demo").iterdir())
    assert _answers(fresh_dir) == resumed
    fresh_scores = read_run(fresh_dir).scores["candidates"]
    for cand in ("zero-shot", "two-shot"):
        assert fresh_scores[cand]["metrics"] == info.scores["candidates"][cand]["metrics"]


@pytest.mark.reliability
def test_resume_refuses_complete_and_unknown_runs(tmp_path, bakeoff_cmd):
    from bakeoff.run.store import RunWriter

    w = RunWriter.create(tmp_path, "demo", "x")
    w.finish("complete")
    proc = subprocess.run(
        [*bakeoff_cmd, "run", "--resume", w.path.name, "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "is complete; nothing to resume" in proc.stderr
    proc = subprocess.run(
        [*bakeoff_cmd, "run", "--resume", "nope", "--runs-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "no run matches 'nope'" in proc.stderr
