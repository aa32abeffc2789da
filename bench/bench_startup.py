"""Start-up: ``bakeoff --help`` and ``bakeoff validate`` wall time, and ``bakeoff run`` to the first token.

Each command runs as a fresh process, as a user types it (median of several runs; the CPU seconds the child
used are reported too, since wall time on a shared machine includes waiting for a core). The first token is
timed from the moment ``bakeoff run`` is started on a one-question, one-candidate recipe (the embedded model,
zero-shot) to the end of the model's first forward pass — the prompt's prefill, which yields the first
generated token; a forward hook records it. The hand-written comparison is a script that imports
transformers, loads the same model, applies the chat template and calls ``generate`` for one token.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DATA, EMBEDDED_MODEL, ROOT, Result, Scale, cli, quiet_libraries

CONFIGS: dict[str, dict[str, Any]] = {
    "toy": {"repeats": 1, "token_repeats": 1},
    "full": {"repeats": 5, "token_repeats": 2},
}

# Run inside the child `bakeoff run`: record when the model's first forward pass ends, then run the CLI.
_CHILD = """
import sys, time
from bakeoff.models import transformers_backend as tb
stamp = sys.argv.pop(1)
init = tb.TransformersGenerator.__init__
def patched(self, model, *args, **kwargs):
    init(self, model, *args, **kwargs)
    def hook(module, inputs, output):
        with open(stamp, "a") as fh:
            fh.write(f"{time.time()}\\n")
        handle.remove()
    handle = model.register_forward_hook(hook)
tb.TransformersGenerator.__init__ = patched
from bakeoff.cli.app import main
sys.argv[0] = "bakeoff"
main()
"""

_HAND = """
import time, sys
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
path, question = sys.argv[1], sys.argv[2]
tok = AutoTokenizer.from_pretrained(path)
model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
messages = [{"role": "system", "content": "You answer questions about documents. Answer briefly and factually, in one sentence."},
            {"role": "user", "content": question}]
ids = tok.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
model.generate(**ids, max_new_tokens=1, do_sample=False)
print(time.time())
"""


def _bakeoff() -> list[str]:
    exe = Path(sys.executable).with_name("bakeoff")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bakeoff"]


def timed(
    cmd: list[str], env: dict[str, str] | None = None
) -> tuple[float, float, subprocess.CompletedProcess]:
    """Wall and child CPU seconds of one command."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, proc


def command_times(cmd: list[str], repeats: int) -> dict[str, float]:
    timed(cmd)  # warm the page cache: a user's second call, not a cold disk
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu, _ = timed(cmd)
        walls.append(wall)
        cpus.append(cpu)
    return {
        "wall_median_s": round(statistics.median(walls), 3),
        "wall_min_s": round(min(walls), 3),
        "cpu_median_s": round(statistics.median(cpus), 3),
    }


def first_token(tmp: Path, env: dict[str, str]) -> dict[str, float]:
    """Seconds from starting ``bakeoff run`` to the end of the first forward pass, and to the process' end."""
    question = json.loads((DATA / "contract-qa.jsonl").read_text(encoding="utf-8").splitlines()[0])
    (tmp / "q.jsonl").write_text(json.dumps(question) + "\n", encoding="utf-8")
    recipe = tmp / "first-token.yaml"
    recipe.write_text(
        "name: bench-first-token\n"
        f"base_model: {EMBEDDED_MODEL}\n"
        "task: qa\n"
        "eval: {questions: q.jsonl, metrics: [exact_match]}\n"
        "candidates:\n"
        "  - {name: zero-shot, agent: fewshot, generation: {max_new_tokens: 1}}\n",
        encoding="utf-8",
    )
    stamp = tmp / "stamp.txt"
    stamp.unlink(missing_ok=True)
    cmd = [sys.executable, "-c", _CHILD, str(stamp), "run", str(recipe), "--runs-dir", str(tmp / "runs")]
    started = time.time()
    wall, cpu, _ = timed(cmd, env)
    first = float(stamp.read_text().split()[0])
    return {"first_token_s": first - started, "run_wall_s": wall}


def hand_first_token(model_dir: Path, env: dict[str, str]) -> float:
    question = json.loads((DATA / "contract-qa.jsonl").read_text(encoding="utf-8").splitlines()[0])[
        "question"
    ]
    started = time.time()
    _, _, proc = timed([sys.executable, "-c", _HAND, str(model_dir), question], env)
    return float(proc.stdout.split()[-1]) - started


def run(scale: Scale = "full") -> Result:
    from bakeoff.models.embedded import ensure_imported

    quiet_libraries()
    cfg = CONFIGS[scale]
    result = Result("startup", scale)
    bakeoff = _bakeoff()
    help_t = command_times([*bakeoff, "--help"], cfg["repeats"])
    validate_t = command_times(
        [*bakeoff, "validate", str(ROOT / "recipes" / "quickstart.yaml")], cfg["repeats"]
    )
    model_dir = ensure_imported(EMBEDDED_MODEL.split(":", 1)[1], quiet=True)
    tokens, hands = [], []
    with tempfile.TemporaryDirectory(prefix="bakeoff-bench-startup-") as tmp:
        env = {
            **os.environ,
            "BAKEOFF_HOME": str(Path(tmp) / "home"),
            "BAKEOFF_MODELS_DIR": str(model_dir.parent),
            "BAKEOFF_ALLOW_OUTSIDE": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        for _ in range(cfg["token_repeats"]):  # alternated, so a change in load hits both
            tokens.append(first_token(Path(tmp), env))
            hands.append(hand_first_token(model_dir, env))
    first = statistics.median(t["first_token_s"] for t in tokens)
    hand = statistics.median(hands)
    result.add("help_wall", help_t["wall_median_s"], unit="s", target=("<", 0.5))
    result.add("validate_wall", validate_t["wall_median_s"], unit="s", target=("<", 0.5))
    # CPU seconds: what the wall time is on an idle machine (a busy one adds waiting for a core)
    result.add("help_cpu", help_t["cpu_median_s"], unit="s", target=("<", 0.5))
    result.add("validate_cpu", validate_t["cpu_median_s"], unit="s", target=("<", 0.5))
    result.add(
        "first_token_vs_script", hand / first, note="script's seconds to its first token over bakeoff's"
    )
    result.add("first_token", first, unit="s")
    result.raw = {
        "help": help_t,
        "validate_quickstart": validate_t,
        "first_token_s": [round(t["first_token_s"], 3) for t in tokens],
        "run_one_question_wall_s": [round(t["run_wall_s"], 3) for t in tokens],
        "script_first_token_s": [round(h, 3) for h in hands],
    }
    return result


def main(argv: list[str] | None = None) -> int:
    return cli("bench_startup", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
