"""Whole runs under stress, on a recipe with a RAG candidate (a small corpus) and a tiny LoRA fine-tune.

- Two ``bakeoff run`` processes on the same recipe at once: the shared Chroma collection holds each chunk once,
  the training cache one adapter, one process says whose lock it waits for, and both runs agree.
- ``kill -9`` during training, then ``bakeoff run --resume RUN``: training resumes from its checkpoint and the
  run ends with the same adapter (to float tolerance) and the same greedy answers as an uninterrupted run.

Every process runs torch on one thread: on a busy 2-core machine two OpenMP threads were measured up to 10x
slower for this tiny model.
"""

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from bakeoff.rag.corpus import CorpusSpec, load_corpus
from bakeoff.run.store import read_answers, read_run

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.reliability

TRAIN = {
    "data": {
        "kind": "instruct",
        "path": str(ROOT / "data" / "contract-train.jsonl"),
        "limit": 12,
        "validation": 0.25,
        "test": 0.0,
    },
    "max_steps": 4,
    "learning_rate": 1e-3,
    "batch_size": 2,
    "eval_every": 2,
    "max_length": 64,
    "seed": 5,
}
CORPUS = str(ROOT / "data" / "contract" / "annex-b-pricing.md")
RECIPE = f"""\
name: stress
task: qa
eval:
  questions: {ROOT}/data/contract-qa.jsonl
  limit: 4
  metrics: [rougeL, exact_match]
corpus:
  paths: [{CORPUS}]
  chunk: {{size: 512, overlap: 64}}
candidates:
  - name: rag
    agent: rag
    k: 2
    generation: {{max_new_tokens: 12, batch_size: 4}}
  - name: lora
    agent: finetuned
    train: {json.dumps(TRAIN)}
    generation: {{max_new_tokens: 12, batch_size: 4}}
"""


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "BAKEOFF_HOME": str(home), "OMP_NUM_THREADS": "1"}


def _answers(run_dir: Path) -> dict:
    return {(r["candidate"], r["question_id"]): r["answer"] for r in read_answers(run_dir)}


def _means(run_dir: Path) -> dict:
    scores = read_run(run_dir).scores["candidates"]
    return {c: {m: v["mean"] for m, v in s["metrics"].items()} for c, s in scores.items()}


def _adapter(run_dir: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(run_dir / "training" / "lora" / "adapter" / "adapter_model.safetensors")


@pytest.fixture(scope="module")
def concurrent(tmp_path_factory):
    """Two `bakeoff run` processes started together on one recipe, one BAKEOFF_HOME."""
    base = tmp_path_factory.mktemp("concurrent")
    recipe = base / "stress.yaml"
    recipe.write_text(RECIPE)
    home, runs = base / "home", base / "runs"
    cmd = [str(Path(os.sys.executable).with_name("bakeoff")), "run", str(recipe), "--runs-dir", str(runs)]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home))
        for _ in range(2)
    ]
    outs = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=900)
            outs.append((proc.pid, proc.returncode, out, err))
            (base / f"output-{proc.pid}.txt").write_text(out + err)  # to read after a failure
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    return {"recipe": recipe, "home": home, "runs": runs, "outs": outs}


def test_two_runs_at_once_share_the_store_and_the_training_cache(concurrent):
    outs, home = concurrent["outs"], concurrent["home"]
    for _pid, code, out, err in outs:
        assert code == 0, out[-2000:] + err[-3000:]
        # rag's scores print before the fine-tune trains (or finds its cached adapter)
        assert "first results" in out and "still to come: lora (training lora first" in out
    pids = [pid for pid, *_ in outs]

    # One of them waited for the other's lock (the store's while it indexed, or the adapter's while it trained)
    # and said which process holds it.
    waits = [
        (pid, int(m.group(1)))
        for pid, _, out, _ in outs
        for m in re.finditer(r"waiting for lock \S+ held by PID (\d+)", out)
    ]
    assert waits, "neither process waited for a lock"
    assert all(holder in pids and holder != waiter for waiter, holder in waits), (waits, pids)

    # The collection holds each chunk of the corpus exactly once.
    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(
        path=str(home / "chroma" / "stress"), settings=Settings(anonymized_telemetry=False)
    )
    ids = client.get_collection("bakeoff-stress").get(include=[])["ids"]
    expected = {c.id for c in load_corpus(CorpusSpec(paths=[CORPUS]), concurrent["recipe"].parent).chunks}
    assert len(ids) == len(set(ids)) == len(expected) > 3 and set(ids) == expected

    # The training cache holds one adapter, trained once: the other run reused it.
    finished = [p.parent for p in (home / "training").glob("*/summary.json")]
    assert len(finished) == 1 and len([p for p in (home / "training").iterdir() if p.is_dir()]) == 1
    run_dirs = sorted((concurrent["runs"] / "stress").iterdir())
    assert len(run_dirs) == 2
    hits = sorted(
        json.loads((d / "training" / "lora" / "summary.json").read_text())["cache_hit"] for d in run_dirs
    )
    assert hits == [False, True]

    # Both runs completed with the same answers and the same scores.
    first, second = run_dirs
    assert read_run(first).status == read_run(second).status == "complete"
    assert _answers(first) == _answers(second) and len(_answers(first)) == 8
    assert _means(first) == _means(second)
    for d in run_dirs:
        corpus = read_run(d).manifest["corpus"]
        assert corpus["collection_size"] == corpus["chunks"] == len(expected)


def test_kill_during_training_then_resume_equals_an_uninterrupted_run(concurrent, tmp_path, bakeoff_cmd):
    home, runs = tmp_path / "home", tmp_path / "runs"  # a fresh cache: this run must train
    cmd = [*bakeoff_cmd, "run", str(concurrent["recipe"]), "--runs-dir", str(runs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(home))
    try:
        deadline, state = time.time() + 600, None
        while state is None and time.time() < deadline and proc.poll() is None:
            state = next(iter(home.glob("training/*/checkpoints/checkpoint-2/trainer_state.json")), None)
            time.sleep(0.05)
        assert state is not None, "training never wrote its step-2 checkpoint"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    [run_dir] = list((runs / "stress").iterdir())
    # rag trains nothing, so it answered (and its scores printed) before the fine-tune started training
    assert read_run(run_dir).status == "interrupted"
    assert {(r["candidate"], r.get("error")) for r in read_answers(run_dir)} == {("rag", None)}
    assert len(read_answers(run_dir)) == 4
    [folder] = [p for p in (home / "training").iterdir() if p.is_dir()]
    assert not (folder / "summary.json").exists()
    kept = max(int(p.parent.name.rpartition("-")[2]) for p in folder.glob("checkpoints/*/trainer_state.json"))
    assert kept in (2, 4)

    resumed = subprocess.run(
        [*bakeoff_cmd, "run", "--resume", run_dir.name, "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-3000:]
    assert f"resuming from step {kept} of 4" in resumed.stdout
    assert "4 answers already on disk are kept" in resumed.stdout  # rag's, not asked again
    info = read_run(run_dir)
    assert info.status == "complete" and info.manifest["resumed_at"]
    summary = json.loads((run_dir / "training" / "lora" / "summary.json").read_text())
    assert summary["resumed_from_step"] == kept and summary["cache_hit"] is False
    rows = [
        json.loads(line)
        for line in (run_dir / "training" / "lora" / "metrics.jsonl").read_text().splitlines()
    ]
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [0, 2, 4]  # no step logged twice

    # The same as the uninterrupted runs of the concurrency test: weights, answers and scores.
    import torch

    reference = sorted((concurrent["runs"] / "stress").iterdir())[0]
    ours, theirs = _adapter(run_dir), _adapter(reference)
    assert ours.keys() == theirs.keys()
    for name in ours:
        torch.testing.assert_close(ours[name], theirs[name], rtol=1e-4, atol=1e-5, msg=name)
    assert _answers(run_dir) == _answers(reference)
    assert _means(run_dir) == _means(reference)


# `bakeoff index`, paused for good right after its first Chroma write: the kill lands between two writes by
# construction, whatever the machine's speed (the write itself is the product's, unchanged).
_PAUSE_AFTER_FIRST_WRITE = """
import sys, time
from bakeoff.rag import sync

_embed = sync._Mirror._embed

def _embed_then_pause(self, chunks):
    _embed(self, chunks)
    print("WRITTEN", self.report.added, flush=True)
    time.sleep(3600)

sync._Mirror._embed = _embed_then_pause
sys.argv = ["bakeoff", *sys.argv[1:]]
from bakeoff.cli.app import main
main()
"""


@pytest.mark.slow
def test_kill_during_indexing_then_index_again_keeps_the_finished_chunks(tmp_path):
    """kill -9 while the corpus is being embedded: the chunks stored before the kill are kept, the rest are
    added by the next `bakeoff index` (or `bakeoff run --resume`, which syncs the same way), none twice."""
    import sqlite3
    import sys

    from bakeoff.rag.corpus import ChunkSpec
    from bakeoff.rag.sync import EMBED_BATCH

    recipe = tmp_path / "index.yaml"
    recipe.write_text(
        f"name: index-kill\neval: {{questions: {ROOT}/data/contract-qa.jsonl}}\n"
        f"corpus: {{paths: [{ROOT}/data/contract], chunk: {{size: 80, overlap: 8}}}}\n"
        "candidates: [{name: rag, agent: rag}]\n"
    )
    spec = CorpusSpec(paths=[f"{ROOT}/data/contract"], chunk=ChunkSpec(size=80, overlap=8))
    expected = {c.id for c in load_corpus(spec, tmp_path).chunks}
    assert len(expected) > 2 * EMBED_BATCH  # several write batches: the first is not the last
    home = tmp_path / "home"
    db = home / "chroma" / "index-kill" / "chroma.sqlite3"

    def stored() -> int:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
                return conn.execute("SELECT count(*) FROM embeddings").fetchone()[0]
        except sqlite3.Error:
            return 0

    proc = subprocess.Popen(
        [sys.executable, "-c", _PAUSE_AFTER_FIRST_WRITE, "index", str(recipe)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_env(home),
    )
    try:
        line = proc.stdout.readline()  # blocks until the first batch is written (or the process ends)
        assert line.split() == ["WRITTEN", str(EMBED_BATCH)], line
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
    kept = stored()
    assert kept == EMBED_BATCH, kept

    again = subprocess.run(
        [sys.executable, "-m", "bakeoff", "index", str(recipe)],
        capture_output=True,
        text=True,
        env=_env(home),
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    counts = re.search(r"added (\d+), removed (\d+), unchanged (\d+)", again.stdout)
    added, removed, unchanged = map(int, counts.groups())
    assert (removed, unchanged, added + unchanged) == (0, kept, len(expected))

    import chromadb
    from chromadb.config import Settings

    client = chromadb.PersistentClient(path=str(db.parent), settings=Settings(anonymized_telemetry=False))
    collection = client.get_collection("bakeoff-index-kill")
    ids = collection.get(include=[])["ids"]
    assert len(ids) == len(set(ids)) == len(expected) and set(ids) == expected
    # the vector index answers queries over every chunk, including those written before the kill
    got = collection.query(
        query_embeddings=[collection.get(ids=ids[:1], include=["embeddings"])["embeddings"][0]], n_results=1
    )
    assert got["ids"][0] == ids[:1]


def test_a_run_stopped_by_a_known_condition_says_how_to_resume(tmp_path, bakeoff_cmd):
    """No traceback for a condition the message explains (here: the recipe's Chroma server is down); the run is
    marked failed and the message names the command that finishes it."""
    recipe = tmp_path / "down.yaml"
    recipe.write_text(
        f"name: down\neval: {{questions: {ROOT}/data/contract-qa.jsonl, limit: 2}}\n"
        f"corpus: {{paths: [{CORPUS}]}}\nchroma: {{host: 127.0.0.1, port: 9}}\n"
        "candidates: [{name: rag, agent: rag}]\n"
    )
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)],
        capture_output=True,
        text=True,
        env=_env(tmp_path / "home"),
        timeout=300,
    )
    [run_dir] = list((runs / "down").iterdir())
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "error: cannot reach the Chroma server http://127.0.0.1:9" in proc.stderr
    assert f"`bakeoff run --resume {run_dir.name}` continues it" in proc.stderr
    info = read_run(run_dir)
    assert info.status == "failed" and info.manifest["error"].startswith("VectorStoreError: cannot reach")
