"""The synthesize stage on Dask with the real embedded model: a LocalCluster of 2 workers through the CLI, and
an existing scheduler (a `dask scheduler` + `dask worker` started here on loopback)."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bakeoff.agents.synthesizer import REASONS, support
from bakeoff.parallel import machine_workers, open_executor, worker_generator

ROOT = Path(__file__).resolve().parent.parent

RECIPE = f"""\
name: synth-dask
corpus:
  paths: [{ROOT}/data/contract]
eval:
  questions: {ROOT}/data/contract-qa.jsonl
synthesize:
  - name: contract-qa
    per_chunk: 1
    kinds: [qa]
    max_chunks: 2
    chunks_per_task: 1
    output: out/contract-qa.jsonl
    workers: 2
    generation:
      max_new_tokens: 64
candidates:
  - name: zero-shot
    agent: fewshot
"""


def test_inline_executor_and_worker_sizing():
    with open_executor("inline") as ex:
        assert ex.where == "inline" and ex.workers == 1
        results = list(ex.map_unordered(lambda x: 10 // x, [1, 0, 5]))
    assert [(i, r) for i, r, e in results if e is None] == [(0, 10), (2, 2)]
    assert isinstance(results[1][2], ZeroDivisionError)
    assert 1 <= machine_workers() <= (os.cpu_count() or 1)
    with pytest.raises(ValueError):
        worker_generator(None)  # not inside a Dask worker


@pytest.mark.slow
@pytest.mark.smoke
def test_synthesize_on_a_local_cluster_then_resume(tmp_path, bakeoff_cmd, embedded_model):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE)
    proc = subprocess.run(
        [*bakeoff_cmd, "synthesize", str(recipe)], capture_output=True, text=True, timeout=1200
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "on LocalCluster (2 workers)" in proc.stdout and "LocalCluster ×2" in proc.stdout
    assert "chunks 2 · units 2 · skipped 0 (already done) · generated 2" in proc.stdout
    output = tmp_path / "out" / "contract-qa.jsonl"
    report = json.loads((tmp_path / "out" / "contract-qa.jsonl.report.json").read_text())
    totals = report["totals"]
    assert totals["generated"] == 2 and set(totals["rejected"]) <= set(REASONS)
    assert totals["accepted"] + sum(totals["rejected"].values()) == 2
    records = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
    assert len(records) == totals["accepted"] == totals["records_in_output"]
    for r in records:  # every record that got through is complete and grounded in its chunk
        assert r["question"].strip() and r["answer"].strip() and r["kind"] == "qa"
        assert len(r["chunk_id"]) == 32 and r["source"].endswith(".md") and r["answer"]
        assert support(r["answer"], r["passage"]) >= 0.6
    assert report["last_run"]["where"] == "LocalCluster" and report["last_run"]["workers"] == 2
    before = output.read_bytes() if output.exists() else b""

    again = subprocess.run(
        [*bakeoff_cmd, "synthesize", str(recipe)], capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert (
        "skipped 2 (already done) · generated 0 · accepted 0" in again.stdout
        and "nothing to do" in again.stdout
    )
    assert (output.read_bytes() if output.exists() else b"") == before


@pytest.fixture
def embedded_model() -> Path:
    """The embedded model imported once (workers load it themselves; nothing is loaded here)."""
    from bakeoff.models.embedded import ensure_imported

    return ensure_imported("smollm2-135m-instruct", quiet=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_synthesize_through_a_scheduler_address(tmp_path, embedded_model):
    """The same job code, pointed at `tcp://127.0.0.1:PORT` where a scheduler and one worker run."""
    from distributed import Client

    from bakeoff.recipe.load import load_recipe
    from bakeoff.synth.outputs import find_job
    from bakeoff.synth.run import run_job

    texts = [json.loads(line) for line in (ROOT / "data" / "reviews-eval.jsonl").read_text().splitlines()[:3]]
    (tmp_path / "texts.jsonl").write_text("".join(json.dumps(t) + "\n" for t in texts))
    recipe_path = tmp_path / "recipe.yaml"
    recipe_path.write_text(
        f"""\
name: label-remote
task: classification
labels: [positive, negative, neutral]
eval:
  questions: {ROOT}/data/reviews-eval.jsonl
synthesize:
  - name: reviews
    mode: label
    from: texts.jsonl
    examples: {ROOT}/data/reviews-examples.jsonl
    k: 3
    output: out/labels.jsonl
    scheduler: tcp://127.0.0.1:1
candidates:
  - name: zero-shot
    agent: fewshot
"""
    )
    recipe = load_recipe(recipe_path)
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    dask = [str(Path(sys.executable).with_name("dask"))]
    logs = [(tmp_path / "scheduler.log").open("w"), (tmp_path / "worker.log").open("w")]
    scheduler = subprocess.Popen(
        [*dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=logs[0],
        stderr=subprocess.STDOUT,
    )
    worker = None
    try:
        worker = subprocess.Popen(
            [*dask, "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard", "--no-nanny"],
            stdout=logs[1],
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(1, timeout=120)
        started = time.perf_counter()
        summary = run_job(recipe, find_job(recipe, "reviews"), scheduler=address)
        assert summary.where == address and summary.workers == 1
        assert summary.generated == 3 and summary.accepted + sum(summary.rejected.values()) == 3
        assert set(summary.rejected) <= {"unparseable_label", "duplicate"}
        report = summary.report
        assert report["last_run"]["where"] == address and time.perf_counter() - started < 600
        output = tmp_path / "out" / "labels.jsonl"
        records = [json.loads(line) for line in output.read_text().splitlines()] if output.exists() else []
        assert all(r["label"] in ("positive", "negative", "neutral") for r in records)
        agreement = report["totals"].get("agreement_with_input_labels", {"records": 0})
        assert agreement["records"] == len(records)
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
        for proc in (worker, scheduler):
            if proc is not None:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)
        for log in logs:
            log.close()
