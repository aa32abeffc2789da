"""Every benchmark module runs at toy size and reports its measures, so the benchmarks cannot rot.

The benchmarks themselves are not tests (``make bench``, never CI): these runs check structure — each prints
``name: value`` lines with positive numbers and writes its JSON — not speed.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # bench/ sits beside the package and is not installed
    sys.path.insert(0, str(ROOT))

LINE = re.compile(r"^(?P<name>[a-z0-9_]+\.[a-z0-9_.]+): (?P<value>-?[0-9.e+]+)(?P<unit>x| \S+)")
MODULES = [
    "bench_startup",
    "bench_training",
    "bench_answering",
    "bench_retrieval",
    "bench_e2e",
    "bench_console",
]
EXPECTED = {
    "bench_startup": ["startup.help_wall", "startup.validate_wall", "startup.first_token_vs_script"],
    "bench_training": ["training.tokens_per_s_vs_script", "training.bakeoff_fraction_of_matmul_peak"],
    "bench_answering": ["answering.answers_per_s_vs_loop", "answering.answers_per_s_vs_loop_as_run"],
    "bench_retrieval": [
        "retrieval.ingest_chunks_per_s",
        "retrieval.search_p95",
        "retrieval.chroma_p50_growth",
    ],
    "bench_e2e": ["e2e.wall", "e2e.stage.index", "e2e.stage.train", "e2e.stage.answer", "e2e.stage.score"],
    "bench_console": ["console.runs_page_cold"],
}


@pytest.mark.parametrize("module", MODULES)
def test_benchmark_runs_at_toy_size(module, tmp_path, capsys):
    mod = importlib.import_module(f"bench.{module}")
    out = tmp_path / "result.json"
    assert mod.main(["--toy", "--json", str(out)]) in (0, 1)  # 1: a target missed, which a toy run may
    printed = capsys.readouterr().out.splitlines()
    values = {m["name"]: float(m["value"]) for line in printed if (m := LINE.match(line))}
    for name in EXPECTED[module]:
        assert name in values, f"no '{name}: …' line in:\n" + "\n".join(printed)
    assert all(v >= 0 for v in values.values()), values
    assert all(values[name] > 0 for name in EXPECTED[module] if name != "e2e.stage.score"), values
    result = json.loads(out.read_text())
    assert result["scale"] == "toy" and not result["skipped"]
    assert {m["name"] for m in result["measures"]} >= set(EXPECTED[module])
    assert result["raw"], "raw numbers are recorded"


def test_gpu_benchmark_skips_cleanly_without_cuda():
    import torch

    from bench import bench_gpu

    result = bench_gpu.run("toy")
    if torch.cuda.is_available():
        pytest.skip("CUDA is present: the GPU benchmark runs for real (make bench)")
    assert result.skipped and "CUDA" in result.skipped
    assert result.lines() == [f"gpu: skipped ({result.skipped})"]


def test_driver_runs_and_writes_the_document(tmp_path):
    doc = tmp_path / "benchmarks.md"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--toy", "--only", "gpu,console", "--doc", str(doc)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "== summary" in proc.stdout and "console.runs_page_cold:" in proc.stdout
    text = doc.read_text()
    assert "## Machine" in text and "| CPU |" in text and "load average" in text
    assert "`console.runs_page_cold`" in text and "< 2 s" in text


@pytest.mark.slow
def test_answer_stage_runs_old_and_new_code_side_by_side(capsys):
    # A worktree of the old revision and this checkout answer the quickstart's zero-shot questions; both
    # run the same greedy decoding of the same model, so the answers are identical.
    from bench import bench_answer_stage

    result = bench_answer_stage.run("toy")
    values = {m.name: m.value for m in result.measures}
    assert values["answer_stage.new_vs_old"] > 0
    assert values["answer_stage.identical_answers"] == 1.0
    assert 0 < values["answer_stage.achieved_fraction_of_peak"] < 1
    assert result.raw["answers"] == 48 and set(result.raw["new_per_candidate_s"]) == {"zero-shot"}


def test_an_only_run_replaces_its_rows_and_keeps_the_rest():
    from bench.run_all import _merged, render

    def bench(name, value):
        return {
            "benchmark": name,
            "skipped": None,
            "measures": [
                {"name": f"{name}.m", "value": value, "unit": "x", "target": None, "met": None, "note": ""}
            ],
            "raw": {},
        }

    machine = {
        "cpu": "c",
        "cores": 2,
        "memory_gib": 1,
        "gpu": None,
        "os": "o",
        "python": "3",
        "versions": {},
        "load_average": [0.1, 0.2, 0.3],
    }
    before = {
        "started": "then",
        "seconds": 60,
        "machine": machine,
        "load_average_end": [1, 1, 1],
        "results": [bench("a", 1.0), bench("b", 2.0)],
    }
    now = {
        "started": "now",
        "seconds": 5,
        "machine": machine,
        "load_average_end": [0.5, 0.5, 0.5],
        "results": [bench("b", 3.0), bench("c", 4.0)],
    }
    run = _merged(before, now)
    assert [(r["benchmark"], r["measures"][0]["value"]) for r in run["results"]] == [
        ("a", 1.0),
        ("b", 3.0),
        ("c", 4.0),
    ]
    text = render(run)
    assert "`python -m bench --only b` on now" in text and "`python -m bench --only c` on now" in text
    assert "| `a.m` | 1.00x |" in text and "| `b.m` | 3.00x |" in text
