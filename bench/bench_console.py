"""Benchmark: how long the console's Runs page takes to render with many runs in the store.

Creates N synthetic runs (default 100: 5 recipes, 4 candidates, 50 questions, 7 metrics with intervals each)
in a temporary folder, then renders the Runs page headless with Streamlit's AppTest: once with empty caches
(a fresh console) and a few times warm (what a user sees on every later visit; readers are cached per file
modification time). Run it with::

    python bench/bench_console.py            # 100 runs (or: python -m bench.bench_console)
    python bench/bench_console.py --runs 300
    python bench/bench_console.py --toy      # 6 runs, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "ui" / "app.py"
METRICS = ["bleu", "rouge1", "rouge2", "rougeL", "exact_match", "token_f1", "contains"]
CANDIDATES = ["zero-shot", "three-shot", "rag", "lora"]


def make_runs(root: Path, n: int = 100, *, questions: int = 50, seed: int = 0) -> list[Path]:
    """Write ``n`` complete synthetic runs (manifest, scores with intervals, answers) under ``root``."""
    rng = random.Random(seed)
    paths = []
    for i in range(n):
        recipe = f"recipe-{i % 5}"
        run_id = f"2026{(i // 28) % 12 + 1:02d}{i % 28 + 1:02d}-{i % 24:02d}0000-{i:04x}"
        path = Path(root) / recipe / run_id
        path.mkdir(parents=True)
        started = f"2026-{(i // 28) % 12 + 1:02d}-{i % 28 + 1:02d}T{i % 24:02d}:00:00+00:00"
        manifest = {
            "run_id": run_id,
            "recipe": recipe,
            "status": "complete",
            "started_at": started,
            "ended_at": started.replace(":00:00+", ":07:30+"),
            "task": "qa",
            "n_questions": questions,
            "answering": CANDIDATES,
            "candidates": {c: {"agent": "fewshot"} for c in CANDIDATES},
            "timings_s": {"prepare": 10.0, "answer": 400.0, "score": 40.0},
            "pid": None,
        }
        cands, per_answer, rows = {}, {}, []
        for c in CANDIDATES:
            per_answer[c] = {}
            for q in range(questions):
                per_answer[c][f"q{q}"] = {m: round(rng.random(), 3) for m in METRICS}
                rows.append(
                    {
                        "candidate": c,
                        "question_id": f"q{q}",
                        "question": f"Question {q} about clause {q % 9}?",
                        "reference": f"Reference answer {q}.",
                        "answer": f"Answer {q} from {c}.",
                        "latency_s": round(rng.uniform(0.2, 2.0), 3),
                        "prompt_tokens": 80,
                        "completion_tokens": 20,
                        "error": None,
                    }
                )
            cands[c] = {
                "metrics": {
                    m: {"mean": (mean := rng.random()), "n": questions, "missing": 0}
                    | {"ci_low": max(0.0, mean - 0.08), "ci_high": min(1.0, mean + 0.08)}
                    for m in METRICS
                },
                "errors": 0,
                "n": questions,
                "latency_s": {"mean": 1.0, "p50": 0.9, "p95": 1.8},
                "tokens": {"prompt": 80 * questions, "completion": 20 * questions},
                "truncated": 0,
            }
        scores = {
            "task": "qa",
            "metrics": METRICS,
            "n_questions": questions,
            "candidates": cands,
            "per_answer": per_answer,
        }
        (path / "recipe.yaml").write_text(f"name: {recipe}\n", encoding="utf-8")
        (path / "scores.json").write_text(json.dumps(scores), encoding="utf-8")
        (path / "answers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        paths.append(path)
    return paths


def time_runs_page(runs_dir: Path, *, warm_repeats: int = 3) -> dict[str, float]:
    """Seconds to render the Runs page: ``cold`` (empty caches) and ``warm`` (median of later renders).

    Raises:
        RuntimeError: the page raised an exception or did not list every run.
    """
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["BAKEOFF_RUNS_DIR"] = str(runs_dir)
    expected = sum(1 for p in Path(runs_dir).glob("*/*") if p.is_dir())
    at = AppTest.from_file(str(APP), default_timeout=120)
    # The first run imports Streamlit's and the app's modules and scans installed packages for components:
    # start-up cost that a console pays once, not per page view. Then empty the caches for the cold render.
    at.run()
    st.cache_data.clear()

    def render() -> float:
        t0 = time.perf_counter()
        at.run()
        elapsed = time.perf_counter() - t0
        if at.exception:
            raise RuntimeError(f"Runs page raised: {at.exception[0].value}")
        shown = len(at.dataframe[0].value) if at.dataframe else 0
        if shown != expected:
            raise RuntimeError(f"Runs page listed {shown} runs, expected {expected}")
        return elapsed

    cold = render()
    warm = [render() for _ in range(warm_repeats)]
    return {"runs": expected, "cold_s": round(cold, 3), "warm_s": round(statistics.median(warm), 3)}


def run(scale: str = "full", *, runs: int | None = None, questions: int | None = None):
    """The benchmark as :mod:`bench` runs it: a ``bench.common.Result`` (toy: 6 runs of 3 questions)."""
    if str(ROOT) not in sys.path:  # run as a script (python bench/bench_console.py)
        sys.path.insert(0, str(ROOT))
    from bench.common import Result

    runs = runs or (6 if scale == "toy" else 100)
    questions = questions or (3 if scale == "toy" else 50)
    result = Result("console", scale)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-") as tmp:
        t0 = time.perf_counter()
        make_runs(Path(tmp), runs, questions=questions)
        made = time.perf_counter() - t0
        timing = time_runs_page(Path(tmp), warm_repeats=1 if scale == "toy" else 3)
    result.add("runs_page_cold", timing["cold_s"], unit="s", target=("<", 2.0), note=f"{timing['runs']} runs")
    result.add("runs_page_warm", timing["warm_s"], unit="s", note=f"{timing['runs']} runs")
    result.raw = {
        "runs": timing["runs"],
        "questions_per_run": questions,
        "made_in_s": round(made, 2),
        **timing,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=None, help="synthetic runs to create (default 100)")
    parser.add_argument("--questions", type=int, default=None, help="questions per run (default 50)")
    parser.add_argument("--toy", action="store_true", help="6 runs of 3 questions")
    parser.add_argument("--json", type=Path, help="write the result to this JSON file")
    parser.add_argument("--append", type=Path, help="append the result to this JSON-lines file")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    result = run("toy" if args.toy else "full", runs=args.runs, questions=args.questions)
    result.seconds = round(time.perf_counter() - t0, 2)
    result.print()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    if args.append:
        with args.append.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(result.to_dict()) + "\n")
    return 0 if all(m.met is not False for m in result.measures) else 1


if __name__ == "__main__":
    sys.exit(main())
