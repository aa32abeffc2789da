"""End to end: ``bakeoff run recipes/quickstart.yaml`` (what ``make demo`` runs), wall time by stage.

The run is a fresh ``bakeoff run`` process; the stages come from the run's manifest (``timings_s``, the
per-candidate ``prepare_s`` — indexing for ``rag``, training for ``finetuned`` — and each candidate's
``answer_s``), and "start-up and other" is the process' wall time minus the stages (imports, loading the
recipe, printing the table).

Training the quickstart's LoRA (93 steps) takes 10-20 minutes on 2 shared cores — more than ``make bench``
may spend — so ``make bench`` runs the quickstart the way a second ``make demo`` does: the adapter comes from
the training cache of a persistent benchmark home (``$BAKEOFF_HOME/bench/e2e-home``), the vector store is
built from scratch. The first time (or with ``--cold``, in a fresh temporary home) it trains, and the cold
numbers say so. The toy scale runs a one-question recipe with a 2-step LoRA in a temporary home.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DATA, EMBEDDED_MODEL, ROOT, Result, Scale, cli, quiet_libraries

TOY_RECIPE = f"""name: bench-e2e-toy
base_model: {EMBEDDED_MODEL}
task: qa
eval: {{questions: {DATA / "contract-qa.jsonl"}, limit: 2, metrics: [exact_match, rougeL]}}
corpus: {{paths: [{DATA / "contract" / "annex-b-pricing.md"}]}}
candidates:
  - {{name: zero-shot, agent: fewshot, generation: {{max_new_tokens: 8}}}}
  - {{name: rag, agent: rag, k: 2, generation: {{max_new_tokens: 8}}}}
  - name: lora
    agent: finetuned
    generation: {{max_new_tokens: 8}}
    train:
      data: {{kind: instruct, path: {DATA / "contract-train.jsonl"}, limit: 12}}
      max_steps: 2
      batch_size: 2
      max_length: 96
      lora: {{r: 4}}
"""


def _bakeoff() -> list[str]:
    exe = Path(sys.executable).with_name("bakeoff")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bakeoff"]


def persistent_home() -> Path:
    from bakeoff import paths

    return paths.home() / "bench" / "e2e-home"


def stages(manifest: dict[str, Any], wall: float) -> dict[str, float]:
    """Seconds by stage: start-up and other, index, train, other preparation, answer, score."""
    timings = manifest.get("timings_s") or {}
    prepare_s = manifest.get("prepare_s") or {}
    kinds = {name: info.get("agent") for name, info in (manifest.get("candidates") or {}).items()}
    index = sum(s for name, s in prepare_s.items() if kinds.get(name) == "rag")
    train = sum(s for name, s in prepare_s.items() if kinds.get(name) == "finetuned")
    known = sum(v for v in timings.values() if isinstance(v, int | float))
    out = {
        "startup_and_other": wall - known,
        "index": index,
        "train": train,
        "prepare_other": timings.get("prepare", 0.0) - index - train,
        "answer": timings.get("answer", 0.0),
        "score": timings.get("score", 0.0),
    }
    for extra in ("synthesize", "register"):
        if extra in timings:
            out[extra] = timings[extra]
    return {k: round(v, 2) for k, v in out.items()}


def run(scale: Scale = "full", *, cold: bool = False) -> Result:
    from bakeoff import paths

    quiet_libraries()
    result = Result("e2e", scale)
    models = str(paths.models_dir())
    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-e2e-") as tmp:
        tmp_path = Path(tmp)
        if scale == "toy":
            recipe = tmp_path / "toy.yaml"
            recipe.write_text(TOY_RECIPE, encoding="utf-8")
            home = tmp_path / "home"
            what = "one-question toy recipe, 2-step LoRA"
        else:
            recipe = ROOT / "recipes" / "quickstart.yaml"
            home = tmp_path / "home" if cold else persistent_home()
            shutil.rmtree(home / "chroma", ignore_errors=True)  # index from scratch every time
            what = "recipes/quickstart.yaml" + (" in a fresh home (cold)" if cold else "")
        env = {
            **os.environ,
            "BAKEOFF_HOME": str(home),
            "BAKEOFF_MODELS_DIR": models,
            "BAKEOFF_ALLOW_OUTSIDE": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        runs = tmp_path / "runs"
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*_bakeoff(), "run", str(recipe), "--runs-dir", str(runs)],
            capture_output=True,
            text=True,
            env=env,
            cwd=ROOT,
            timeout=3600,
        )
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"bakeoff run failed ({proc.returncode}): {proc.stderr[-3000:]}")
        [manifest_path] = runs.glob("*/*/manifest.json")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    by_stage = stages(manifest, wall)
    training = {
        name: info.get("training") or {}
        for name, info in (manifest.get("candidates") or {}).items()
        if info.get("agent") == "finetuned"
    }
    result.add("wall", wall, unit="s", note=what)
    for name, seconds in by_stage.items():
        result.add(f"stage.{name}", seconds, unit="s")
    for name, info in training.items():
        if info.get("cache_hit"):
            result.notes.append(
                f"{name}: adapter from the training cache (trained earlier in {info.get('train_seconds')} s, "
                f"{info.get('tokens_per_second')} tokens/s)"
            )
    result.raw = {
        "recipe": what,
        "status": manifest.get("status"),
        "questions": manifest.get("n_questions"),
        "candidates": {
            name: {
                "agent": info.get("agent"),
                "answer_s": info.get("answer_s"),
                "prepare_s": (manifest.get("prepare_s") or {}).get(name),
            }
            for name, info in (manifest.get("candidates") or {}).items()
        },
        "training": {
            name: {k: info.get(k) for k in ("cache_hit", "train_seconds", "tokens_per_second", "total_steps")}
            for name, info in training.items()
        },
        "index": {k: (manifest.get("corpus") or {}).get(k) for k in ("chunks", "added", "index_s")},
        "timings_s": manifest.get("timings_s"),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cold = "--cold" in argv
    if cold:
        argv.remove("--cold")
    return cli("bench_e2e", lambda scale: run(scale, cold=cold), __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
