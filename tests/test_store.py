import json
import subprocess
import sys
from pathlib import Path

import pytest

from bakeoff.run.store import RunStoreError, RunWriter, find_run, list_runs, read_answers, read_run


def test_lifecycle_running_then_complete(tmp_path):
    w = RunWriter.create(tmp_path, "demo", "name: demo\n", task="qa")
    assert read_run(w.path).status == "running"
    assert (w.path / "recipe.yaml").read_text() == "name: demo\n"
    w.append_answers("a", [{"question_id": "q1", "answer": "x"}])
    w.write_scores({"metrics": [], "candidates": {"a": {}}})
    w.finish("complete")
    info = read_run(w.path)
    assert info.status == "complete" and info.scores["candidates"] == {"a": {}}
    m = json.loads((w.path / "manifest.json").read_text())
    assert m["ended_at"] and m["versions"]["python"] and m["hardware"]["cpu_count"] >= 1
    assert not list(w.path.glob(".*tmp*"))  # no temp files left behind
    with pytest.raises(ValueError):
        w.finish("running")


def test_dead_process_reads_as_interrupted(tmp_path):
    code = (
        "import os, sys; from pathlib import Path; from bakeoff.run.store import RunWriter;"
        f"w = RunWriter.create(Path({str(tmp_path)!r}), 'demo', 'x'); print(w.path); os._exit(9)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    path = out.stdout.strip()
    assert json.loads((Path(path) / "manifest.json").read_text())["status"] == "running"
    assert read_run(path).status == "interrupted"


def test_torn_last_line_is_dropped(tmp_path):
    (tmp_path / "answers.jsonl").write_text(
        '{"candidate": "c", "question_id": "1"}\n{"candidate": "c", "question_id": "2"}\n{"cand'
    )
    assert read_answers(tmp_path) == [
        {"candidate": "c", "question_id": "1"},
        {"candidate": "c", "question_id": "2"},
    ]


def test_resumed_answers_keep_the_last_row_per_question(tmp_path):
    rows = [
        '{"candidate": "c", "question_id": "1", "answer": "old"}',
        '{"candidate": "c", "question_id": "2", "answer": "b"}',
        '{"candidate": "c", "question_id": "1", "answer": "new"}',
    ]
    (tmp_path / "answers.jsonl").write_text("\n".join(rows) + "\n")
    assert [(r["question_id"], r["answer"]) for r in read_answers(tmp_path)] == [("2", "b"), ("1", "new")]


def test_corrupt_run_is_listed_not_raised(tmp_path):
    good = RunWriter.create(tmp_path, "demo", "x")
    good.finish("complete")
    bad = tmp_path / "demo" / "20000101-000000-dead"
    bad.mkdir()
    (bad / "manifest.json").write_text("{not json")
    runs = list_runs(tmp_path)
    assert len(runs) == 2
    broken = [r for r in runs if r.problem]
    assert broken and broken[0].status == "unreadable" and "manifest.json" in broken[0].problem


def test_find_run(tmp_path):
    a = RunWriter.create(tmp_path, "one", "x")
    a.finish("complete")
    assert find_run(tmp_path, "one").path == a.path
    assert find_run(tmp_path, a.path.name[:17]).path == a.path
    assert find_run(tmp_path, str(a.path)).path == a.path
    assert find_run(tmp_path, "latest").path == a.path
    with pytest.raises(RunStoreError, match="no run matches"):
        find_run(tmp_path, "zzz")
