"""Run every benchmark and (re)write ``docs/benchmarks.md``.

    python -m bench                 # full size (make bench): every benchmark, then the document
    python -m bench --toy           # toy size, seconds each; the document is left alone
    python -m bench --only training,answering

Each benchmark runs in its own process (``python -m bench.<module> --json ...``) so one's imports, threads and
memory never touch another's; within a benchmark, bakeoff and the hand-written way run side by side in one
process. Results go to ``bench/results/latest.json``; the document adds the machine, a table of every measure
against its target, the raw numbers, the separately measured cold ``make demo`` (``bench/results/
e2e-cold.json``, written by ``python -m bench.bench_e2e --cold --json ...``) and the analysis kept by hand in
``bench/ANALYSIS.md``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, _flatten, machine

BENCHMARKS = [
    "bench_startup",
    "bench_training",
    "bench_answering",
    "bench_retrieval",
    "bench_e2e",
    "bench_answer_stage",
    "bench_console",
    "bench_gpu",
]
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
ANALYSIS = ROOT / "bench" / "ANALYSIS.md"
INSTALL = ROOT / "bench" / "INSTALL.md"  # measured by hand: a cold install cannot run inside `make bench`


def run_one(module: str, toy: bool, out: Path) -> dict[str, Any]:
    """Run one benchmark module in a child process, its output streamed; its result, or the failure."""
    cmd = [sys.executable, "-m", f"bench.{module}", "--json", str(out)] + (["--toy"] if toy else [])
    print(f"\n== {module} ==", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    seconds = round(time.perf_counter() - t0, 1)
    if proc.returncode != 0 or not out.is_file():
        tail = proc.stderr[-3000:]
        print(f"{module} FAILED ({proc.returncode}):\n{tail}", flush=True)
        return {
            "benchmark": module.removeprefix("bench_"),
            "failed": tail,
            "seconds": seconds,
            "measures": [],
        }
    result = json.loads(out.read_text(encoding="utf-8"))
    result["process_seconds"] = seconds
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--toy", action="store_true", help="toy size (seconds each); the document is not written"
    )
    parser.add_argument("--only", help="comma-separated benchmarks (training, answering, ...)")
    parser.add_argument("--doc", type=Path, default=None, help=f"write the document here (default {DOC})")
    parser.add_argument("--no-doc", action="store_true", help="do not write the document")
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the document from bench/results/latest.json"
    )
    args = parser.parse_args(argv)
    if args.render:
        doc = args.doc or DOC
        doc.write_text(
            render(json.loads((RESULTS / "latest.json").read_text(encoding="utf-8"))), encoding="utf-8"
        )
        print(f"wrote {doc}")
        return 0
    chosen = BENCHMARKS
    if args.only:
        wanted = {f"bench_{n.strip().removeprefix('bench_')}" for n in args.only.split(",") if n.strip()}
        unknown = wanted - set(BENCHMARKS)
        if unknown:
            parser.error(f"unknown benchmarks {sorted(unknown)}; known: {', '.join(BENCHMARKS)}")
        chosen = [b for b in BENCHMARKS if b in wanted]
    info = machine()
    started = time.strftime("%Y-%m-%d %H:%M %Z")
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-") as tmp:
        for module in chosen:
            results.append(run_one(module, args.toy, Path(tmp) / f"{module}.json"))
    total = time.perf_counter() - t0
    info_end = machine()["load_average"]
    print(f"\n== summary ({total / 60:.1f} min) ==")
    for r in results:
        if r.get("failed"):
            print(f"{r['benchmark']}: FAILED")
        elif r.get("skipped"):
            print(f"{r['benchmark']}: skipped ({r['skipped']})")
        for m in r.get("measures", []):
            print(_line(m))
    run = {
        "started": started,
        "scale": "toy" if args.toy else "full",
        "seconds": round(total, 1),
        "machine": info,
        "load_average_end": info_end,
        "results": results,
    }
    if args.only and not args.toy and (RESULTS / "latest.json").is_file():
        run = _merged(json.loads((RESULTS / "latest.json").read_text(encoding="utf-8")), run)
    if not args.toy:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "latest.json").write_text(json.dumps(run, indent=2) + "\n", encoding="utf-8")
    if not args.no_doc and (args.doc or not args.toy):
        doc = args.doc or DOC
        doc.parent.mkdir(parents=True, exist_ok=True)
        doc.write_text(render(run), encoding="utf-8")
        print(f"wrote {doc}")
    return 1 if any(r.get("failed") for r in results) else 0


def _merged(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """``before`` (the last full run) with the benchmarks of ``now`` (an ``--only`` run) replaced or added;
    ``remeasured`` records which, so the document says when those rows were measured."""
    fresh = {r["benchmark"]: r for r in now["results"]}
    names = [r["benchmark"] for r in before["results"]]
    results = [fresh.get(r["benchmark"], r) for r in before["results"]]
    results += [r for r in now["results"] if r["benchmark"] not in names]
    remeasured = {**before.get("remeasured", {})}
    for r in now["results"]:
        remeasured[r["benchmark"]] = {
            "started": now["started"],
            "load_average": now["machine"]["load_average"],
            "load_average_end": now["load_average_end"],
        }
    return {**before, "results": results, "remeasured": remeasured}


def _line(m: dict[str, Any]) -> str:
    value = f"{m['value']:.2f}x" if m["unit"] == "x" else f"{m['value']:.3g} {m['unit']}"
    tail = f"  (target {m['target']}: {'met' if m['met'] else 'NOT met'})" if m.get("target") else ""
    return f"{m['name']}: {value}{tail}"


def _value(m: dict[str, Any]) -> str:
    return f"{m['value']:.2f}x" if m["unit"] == "x" else f"{m['value']:.3g} {m['unit']}"


def render(run: dict[str, Any]) -> str:
    """The Markdown document for one full run."""
    lines = _header(run) + _results_table(run) + _cold_demo() + _install() + _raw_numbers(run)
    if ANALYSIS.is_file():
        lines += [ANALYSIS.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)


def _header(run: dict[str, Any]) -> list[str]:
    """The title, how the run was made, and the machine it ran on."""
    info = run["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v)
    return [
        "# Benchmarks",
        "",
        f"Written by `make bench` (`python -m bench`) on {run['started']}; the run took "
        f"{run['seconds'] / 60:.1f} minutes. Every comparison runs bakeoff and the hand-written way (transformers + "
        "peft + trl + chromadb scripts) side by side in one process, on the same data and settings; a ratio is "
        "bakeoff's throughput over the script's (above 1: bakeoff is faster). Absolute times depend on the "
        "machine and what else runs on it; compare ratios. Each benchmark module documents exactly what it "
        "measures (`bench/bench_*.py`); `python -m bench --toy` runs them all in about two minutes.",
        "",
        "## Machine",
        "",
        "| | |",
        "| --- | --- |",
        f"| CPU | {info['cpu']}, {info['cores']} cores |",
        f"| memory | {info['memory_gib']} GiB |",
        f"| GPU | {info['gpu'] or 'none'} |",
        f"| OS, Python | {info['os']}, Python {info['python']} |",
        f"| libraries | {versions} |",
        f"| load average (1, 5, 15 min) | {_load(info['load_average'])} at the start, "
        f"{_load(run['load_average_end'])} at the end |",
        "",
        "The machine is shared: while this ran, other sessions ran test suites on the same 2 cores, so the load "
        "average is above what the benchmark itself adds (about 1-2). Ratios are measured side by side, within "
        "minutes, and are what counts; absolute numbers are lower bounds for an idle machine.",
        "",
        *[
            f"Re-measured with `python -m bench --only {name.removeprefix('bench_')}` on {when['started']} "
            f"(load average {_load(when['load_average'])} at the start, {_load(when['load_average_end'])} at the "
            "end): the rows of that benchmark."
            for name, when in run.get("remeasured", {}).items()
        ],
        "",
    ]


def _results_table(run: dict[str, Any]) -> list[str]:
    """One row per measure: value, target, whether it was met."""
    lines = [
        "## Results",
        "",
        "| measure | value | target | met | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in run["results"]:
        if r.get("failed"):
            lines.append(f"| {r['benchmark']} | failed | | | see the raw section |")
            continue
        if r.get("skipped"):
            lines.append(f"| {r['benchmark']} | skipped | | | {r['skipped']} |")
            continue
        for m in r["measures"]:
            met = "" if m["met"] is None else ("yes" if m["met"] else "**no**")
            lines.append(
                f"| `{m['name']}` | {_value(m)} | {m['target'] or ''} | {met} | {m.get('note') or ''} |"
            )
    return lines


def _cold_demo() -> list[str]:
    """The stages of a cold ``make demo``, measured separately (``bench/results/e2e-cold.json``)."""
    cold = RESULTS / "e2e-cold.json"
    if not cold.is_file():
        return []
    c = json.loads(cold.read_text(encoding="utf-8"))
    return [
        "",
        "## A cold `make demo`",
        "",
        f"Measured separately on {c['started_at'][:16].replace('T', ' ')} (load average "
        f"{_load(c.get('load_average') or [])}): `python -m bench.bench_e2e --json bench/results/e2e-cold.json` "
        "on an empty benchmark home (`--cold` does the same in a temporary one), so the LoRA trains (93 steps) "
        "and the corpus is indexed, as in a first `make demo`. `make bench` itself runs the quickstart with "
        "the adapter from that training cache (a second `make demo`): training alone takes longer than "
        "`make bench` may. Training shared the machine with this session's own test runs for its first third.",
        "",
        "| stage | seconds |",
        "| --- | --- |",
        *[f"| {m['name'].removeprefix('e2e.')} | {m['value']:.1f} |" for m in c["measures"]],
        "",
        *[f"- {note}" for note in c.get("notes", [])],
    ]


def _install() -> list[str]:
    """The install measurements, kept by hand in ``bench/INSTALL.md``."""
    return ["", INSTALL.read_text(encoding="utf-8").strip()] if INSTALL.is_file() else []


def _raw_numbers(run: dict[str, Any]) -> list[str]:
    """Each benchmark's raw numbers and notes."""
    lines = ["", "## Raw numbers", ""]
    for r in run["results"]:
        lines.append(f"### {r['benchmark']}")
        lines.append("")
        if r.get("failed"):
            lines += ["```", r["failed"].strip(), "```", ""]
            continue
        if r.get("skipped"):
            lines += [f"Skipped: {r['skipped']}.", ""]
            continue
        lines.append(
            f"Ran in {r.get('process_seconds', r.get('seconds', 0)):.0f} s; load average at its start "
            f"{_load(r.get('load_average') or [])}."
        )
        lines.append("")
        lines += [f"- `{k}`: {_raw(v)}" for k, v in _flatten(r.get("raw") or {})]
        lines += [f"- note: {n}" for n in r.get("notes") or []]
        lines.append("")
    return lines


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values) if values else "?"


def _raw(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_raw(x) for x in v)
    return str(v)


if __name__ == "__main__":
    sys.exit(main())
