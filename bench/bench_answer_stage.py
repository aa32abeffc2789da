"""The quickstart's answer stage, old code against new, side by side: `bakeoff run` of two checkouts.

Issue 14's baseline is the code it measured (``BENCH_OLD``, default ``75f70c8``: main before the answering work).
This benchmark makes a git worktree of that revision, then runs ``bakeoff run recipes/quickstart.yaml`` with
the old checkout and with this one, alternating (``BENCH_ROUNDS``, default 1; old first), in one benchmark home
so both reuse the same cached LoRA adapter and index and only answering differs. It reads each run's
``manifest.json`` (the answer stage's seconds, each candidate's ``answer_s``) and ``answers.jsonl``, and reports
the old/new ratio of the answer stage, how many answers are identical, and the FLOP/s the new answer stage
reached as a share of the matmul peak measured on this machine.

FLOPs per processed token: 2 × the non-embedding parameters for every prompt and generated token, plus
2 × the output layer (vocabulary × hidden size) for every token that is predicted (each generated token);
attention is left out, so the share is a lower bound. Prompt tokens are counted per answer, as recorded —
a beginning shared by a candidate's prompts (three-shot's examples) is prefilled once, so for that candidate
the count is an upper bound. ``--toy`` runs the zero-shot candidate only.

Needs: a git checkout (for the worktree) and the quickstart's adapter in the benchmark home, or time to train
it once (the first run of either side trains it; both then reuse it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DATA, Result, cli

ROOT = DATA.parent
RECIPE = "recipes/quickstart.yaml"
PEAK_GFLOPS = 141.7  # fp32 matmul peak on 2 threads, docs/benchmarks.md (bench/profile_ops.py)
# Runs the bakeoff CLI of the checkout named by the first argument: the editable install maps bakeoff,
# bakeoff.agents, bakeoff.eval and bakeoff.ui to this checkout, so the four packages are loaded from the other
# one by path before anything imports them.
BOOT = """
import importlib.util, pathlib, sys
root = pathlib.Path(sys.argv.pop(1))
specs = [
    importlib.util.spec_from_file_location(
        name, root / folder / "__init__.py", submodule_search_locations=[str(root / folder)]
    )
    for name, folder in (("bakeoff", "bakeoff"), ("bakeoff.agents", "agents"), ("bakeoff.eval", "eval"),
                         ("bakeoff.ui", "ui"))
]
mods = [importlib.util.module_from_spec(spec) for spec in specs]
sys.modules.update({spec.name: mod for spec, mod in zip(specs, mods)})
for spec, mod in zip(specs, mods):
    spec.loader.exec_module(mod)
    if "." in spec.name:
        setattr(sys.modules["bakeoff"], spec.name.split(".")[1], mod)
from bakeoff.cli.app import main
sys.exit(main())
"""


def _run(checkout: Path, runs: Path, only: str | None) -> Path:
    """``bakeoff run`` of the quickstart with ``checkout``'s code; the run folder."""
    env = {**os.environ, "PYTHONPATH": str(checkout), "HF_HUB_OFFLINE": "1", "COLUMNS": "80"}
    cmd = [sys.executable, "-c", BOOT, str(checkout), "run", str(checkout / RECIPE), "--runs-dir", str(runs)]
    if only:
        cmd += ["--only", only]
    before = set(runs.glob("*/*"))
    subprocess.run(cmd, cwd=checkout, env=env, check=True, stdout=subprocess.DEVNULL)
    (made,) = set(runs.glob("*/*")) - before
    return made


def _read(run: Path) -> dict[str, Any]:
    manifest = json.loads((run / "manifest.json").read_text())
    rows = [json.loads(line) for line in (run / "answers.jsonl").read_text().splitlines() if line.strip()]
    return {
        "answer_s": manifest["timings_s"]["answer"],
        "per_candidate_s": {c: f.get("answer_s") for c, f in manifest["candidates"].items()},
        "answers": {(r["candidate"], r["question_id"]): r["answer"] for r in rows},
        "prompt_tokens": sum(r.get("prompt_tokens") or 0 for r in rows),
        "completion_tokens": sum(r.get("completion_tokens") or 0 for r in rows),
    }


def _flops(prompt: int, completion: int) -> float:
    """FLOPs of processing ``prompt`` and generating ``completion`` tokens on the embedded model (see above)."""
    import json as _json

    from bakeoff.models.embedded import ensure_imported

    config = _json.loads((ensure_imported("smollm2-135m-instruct", quiet=True) / "config.json").read_text())
    hidden, layers, inter = config["hidden_size"], config["num_hidden_layers"], config["intermediate_size"]
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    head_dim = hidden // heads
    per_layer = hidden * (heads * head_dim) * 2 + hidden * (kv * head_dim) * 2 + 3 * hidden * inter
    output = config["vocab_size"] * hidden
    return 2.0 * per_layer * layers * (prompt + completion) + 2.0 * output * completion


def run(scale: str = "full") -> Result:
    result = Result("answer_stage", scale)
    rev = os.environ.get("BENCH_OLD", "75f70c8")
    rounds = int(os.environ.get("BENCH_ROUNDS", "1"))
    only = "zero-shot" if scale == "toy" else None
    with tempfile.TemporaryDirectory(prefix="bench-answer-stage-") as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old), rev], cwd=ROOT, check=True)
        try:
            load_before = os.getloadavg()
            seen: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
            for _ in range(rounds):
                for name, checkout in (("old", old), ("new", ROOT)):
                    t0 = time.perf_counter()
                    folder = _run(checkout, Path(tmp) / f"runs-{name}", only)
                    print(f"  {name}: {time.perf_counter() - t0:.0f} s ({folder.name})", flush=True)
                    seen[name].append(_read(folder))
            load_after = os.getloadavg()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    old_s = sum(r["answer_s"] for r in seen["old"]) / rounds
    new_s = sum(r["answer_s"] for r in seen["new"]) / rounds
    a, b = seen["old"][-1], seen["new"][-1]
    same = sum(a["answers"].get(k) == v for k, v in b["answers"].items())
    gflops = _flops(b["prompt_tokens"], b["completion_tokens"]) / new_s / 1e9
    result.add("new_vs_old", old_s / new_s, target=(">=", 3.0), note=f"old = {rev}, {rounds} round(s)")
    result.add("identical_answers", same / max(1, len(b["answers"])), unit="share", target=(">=", 1.0))
    result.add("achieved_fraction_of_peak", gflops / PEAK_GFLOPS, unit="share", note=f"{gflops:.1f} GFLOP/s")
    result.raw = {
        "old_rev": rev,
        "old_answer_s": round(old_s, 1),
        "new_answer_s": round(new_s, 1),
        "old_per_candidate_s": a["per_candidate_s"],
        "new_per_candidate_s": b["per_candidate_s"],
        "answers": len(b["answers"]),
        "identical": same,
        "prompt_tokens": b["prompt_tokens"],
        "completion_tokens": b["completion_tokens"],
        "achieved_gflops": round(gflops, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in load_after],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    return cli("bench_answer_stage", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
