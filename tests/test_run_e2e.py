"""End to end on the real embedded model: `bakeoff run` writes a complete run; a killed run never says complete."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

from bakeoff.run.store import read_answers, read_run

ROOT = Path(__file__).resolve().parent.parent


def small_quickstart(tmp_path: Path, limit: int = 6) -> Path:
    text = (ROOT / "recipes" / "quickstart.yaml").read_text()
    text = text.replace("../data/", f"{ROOT}/data/")
    text = text.replace("  questions: ", f"  limit: {limit}\n  questions: ")
    path = tmp_path / "quickstart.yaml"
    path.write_text(text)
    return path


def test_quickstart_run_is_complete_and_well_formed(tmp_path, bakeoff_cmd, embedded_generator):
    recipe = small_quickstart(tmp_path)
    runs = tmp_path / "runs"
    proc = subprocess.run(
        # the fine-tuned candidates have their own tests (tests/test_finetune.py)
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs), "--only", "zero-shot,three-shot,rag"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "zero-shot" in proc.stdout and "three-shot" in proc.stdout and "rougeL" in proc.stdout
    assert "hit_rate@4" in proc.stdout
    [run_dir] = list((runs / "quickstart").iterdir())
    info = read_run(run_dir)
    assert info.status == "complete"
    m = info.manifest
    assert m["ended_at"] and m["timings_s"]["answer"] > 0 and m["versions"]["torch"].startswith("2.")
    assert set(m["candidates"]) == {"zero-shot", "three-shot", "rag"}
    assert m["corpus"]["documents"] == 3 and m["corpus"]["skipped"] == 0 and m["corpus"]["chunks"] > 30
    assert (run_dir / "recipe.yaml").read_text() == recipe.read_text()
    rows = read_answers(run_dir)
    assert len(rows) == 18
    for row in rows:
        assert row["candidate"] in {"zero-shot", "three-shot", "rag"}
        assert bool(row["contexts"]) == (row["candidate"] == "rag")
        assert row["answer"].strip(), row  # the real model said something
        assert row["error"] is None and row["latency_s"] > 0
        assert row["prompt_tokens"] > 10 and row["completion_tokens"] > 0
    # three-shot prompts carry the examples

    def avg(c):
        return sum(r["prompt_tokens"] for r in rows if r["candidate"] == c) / 6

    assert avg("three-shot") > avg("zero-shot") + 30
    scores = json.loads((run_dir / "scores.json").read_text())
    assert 0.0 <= scores["candidates"]["rag"]["metrics"]["hit_rate@4"]["mean"] <= 1.0
    assert "hit_rate@4" not in scores["candidates"]["zero-shot"]["metrics"]
    for cand in ("zero-shot", "three-shot", "rag"):
        for metric in ("bleu", "rouge1", "rouge2", "rougeL", "exact_match", "token_f1"):
            entry = scores["candidates"][cand]["metrics"][metric]
            assert entry["n"] == 6 and 0.0 <= entry["mean"] <= 1.0
        assert set(scores["per_answer"][cand]) == {r["question_id"] for r in rows if r["candidate"] == cand}
    show = subprocess.run(
        [*bakeoff_cmd, "show", "quickstart", "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert show.returncode == 0 and "★" in show.stdout and "three-shot" in show.stdout
    listing = subprocess.run(
        [*bakeoff_cmd, "runs", "--runs-dir", str(runs)], capture_output=True, text=True, timeout=60
    )
    assert "complete" in listing.stdout


def test_killed_run_is_never_complete(tmp_path, bakeoff_cmd, embedded_generator):
    recipe = small_quickstart(tmp_path, limit=48)
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs), "--only", "zero-shot"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 300
        answers = None
        while time.time() < deadline:  # wait until answers start arriving, then kill mid-answering
            found = list(runs.glob("quickstart/*/answers.jsonl"))
            if found and found[0].stat().st_size > 0:
                answers = found[0]
                break
            time.sleep(0.5)
        assert answers is not None, "run never started answering"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    run_dir = answers.parent
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "running"
    assert read_run(run_dir).status == "interrupted"
    assert not (run_dir / "scores.json").exists()
