"""Training throughput: the ``finetuned`` agent's LoRA training vs a minimal hand-written TRL script, on CPU.

Both train the embedded model (SmolLM2-135M-Instruct) with LoRA (r=16, alpha=32, dropout 0.05, all linear
layers) on the same prompt-completion records — the quickstart's contract Q&A with its system prompt — with
the same batch size, ``max_length``, learning rate and number of optimizer steps, in this one process.

Measured the same way for every trainer (a patch on TRL's ``SFTTrainer`` and on the trainer's callback
handler, so the product code runs unchanged):

- **step throughput**: non-padding tokens per second over the optimizer steps (forward, backward, clipping,
  optimizer; the first step is warm-up and left out). Evaluation and checkpointing happen between steps and
  are not in it. This is the headline ratio (target ≥ 1.0x).
- **wall throughput**: trained tokens over the whole call (load the model, tokenize, train, evaluate, save).
  bakeoff also measures the validation loss about ten times and the test loss once, keeps the best
  checkpoint and writes resumable checkpoints; the hand-written script does none of that.
- **FLOP/s**: an estimate of the work per trained token — 2 FLOPs per frozen weight forward, 2 more backward
  for the activation gradients (LoRA still back-propagates through every frozen layer above the lowest adapter),
  6 per trainable adapter weight — times the tokens per second, as a fraction of the fp32 matmul peak measured
  here with ``torch.mm``. Attention-score FLOPs (~3% at these lengths) are left out.

The hand-written script is the tuned one a careful user ends up with (fp32, no activation checkpointing, torch's
default threads): TRL 1.x's defaults on a CPU — ``bf16`` autocast and activation checkpointing — measured
~2 tokens/s here, 30-40x slower, so that variant runs only with ``BENCH_TRL_DEFAULTS=1`` (minutes per step).
bakeoff chooses its threads from the cores other processes leave free (``bakeoff/threads.py``); when that
differs from torch's default, the script runs once more on bakeoff's thread count, so that the thread choice
and the rest (length-grouped batches, the loss over labelled positions only) can be told apart. Each way stops
after 90 s of steps (full size) should a busy machine make steps very slow; ``stopped_at_time_cap`` says so.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common import DATA, EMBEDDED_MODEL, Result, Scale, cli, isolated_home, quiet_libraries

SYSTEM = "You answer questions about documents. Answer briefly and factually, in one sentence."
LORA = {"r": 16, "alpha": 32, "dropout": 0.05}
CONFIGS: dict[str, dict[str, Any]] = {
    "toy": {"steps": 2, "batch_size": 1, "max_length": 96, "limit": 24, "peak_n": 512, "cap_s": None},
    "full": {"steps": 6, "batch_size": 8, "max_length": 256, "limit": None, "peak_n": 2048, "cap_s": 90.0},
}
LEARNING_RATE = 3e-4


@dataclass
class StepMeter:
    """Time and tokens of optimizer steps, collected from inside the trainers."""

    step_seconds: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    step_padded: list[int] = field(default_factory=list)
    step_threads: list[int] = field(default_factory=list)
    eval_seconds: float = 0.0
    capped: bool = False
    _t0: float | None = None
    _tokens: int = 0
    _padded: int = 0

    def begin(self) -> None:
        self._t0 = time.perf_counter()
        self._tokens = self._padded = 0

    def count(self, inputs: dict[str, Any]) -> None:
        ids = inputs["input_ids"]
        mask = inputs.get("attention_mask")
        self._tokens += int(mask.sum()) if mask is not None else int(ids.numel())
        self._padded += int(ids.numel())

    def end(self) -> None:
        if self._t0 is not None:
            import torch

            self.step_threads.append(torch.get_num_threads())
            self.step_seconds.append(time.perf_counter() - self._t0)
            self.step_tokens.append(self._tokens)
            self.step_padded.append(self._padded)
            self._t0 = None

    def summary(self) -> dict[str, float]:
        """Tokens/s over every step but the first (warm-up); all steps when there is only one."""
        skip = 1 if len(self.step_seconds) > 1 else 0
        secs, toks, padded = (
            sum(self.step_seconds[skip:]),
            sum(self.step_tokens[skip:]),
            sum(self.step_padded[skip:]),
        )
        threads = self.step_threads[skip:] or self.step_threads
        return {
            "steps": len(self.step_seconds),
            "torch_threads": max(set(threads), key=threads.count) if threads else 0,
            "threads_by_step": "".join(str(t) for t in self.step_threads),
            "tokens": sum(self.step_tokens),
            "step_tokens_per_s": toks / secs if secs > 0 else 0.0,
            "mean_step_s": secs / max(1, len(self.step_seconds) - skip),
            "padding_fraction": 1 - toks / padded if padded else 0.0,
            "stopped_at_time_cap": self.capped,
        }


@contextlib.contextmanager
def metered(cap_s: float | None = None) -> Iterator[StepMeter]:
    """Patch TRL's trainer and the callback handler so every trainer built inside reports its steps (and
    stops once its steps took ``cap_s`` seconds: tokens/s needs a few steps, not all of them)."""
    from transformers import Trainer
    from transformers.trainer_callback import CallbackHandler
    from trl import SFTTrainer

    meter = StepMeter()
    orig_step, orig_begin, orig_end, orig_eval = (
        SFTTrainer.training_step,
        CallbackHandler.on_step_begin,
        CallbackHandler.on_step_end,
        Trainer.evaluate,
    )

    def training_step(self, model, inputs, *args, **kwargs):
        meter.count(inputs)
        return orig_step(self, model, inputs, *args, **kwargs)

    def on_step_begin(self, *args, **kwargs):
        meter.begin()
        return orig_begin(self, *args, **kwargs)

    def on_step_end(self, *args, **kwargs):
        meter.end()
        control = orig_end(self, *args, **kwargs)
        if cap_s is not None and len(meter.step_seconds) >= 2 and sum(meter.step_seconds) > cap_s:
            control.should_training_stop = True
            meter.capped = True
        return control

    def evaluate(self, *args, **kwargs):
        t0 = time.perf_counter()
        try:
            return orig_eval(self, *args, **kwargs)
        finally:
            meter.eval_seconds += time.perf_counter() - t0

    SFTTrainer.training_step = training_step
    CallbackHandler.on_step_begin = on_step_begin
    CallbackHandler.on_step_end = on_step_end
    Trainer.evaluate = evaluate
    try:
        yield meter
    finally:
        SFTTrainer.training_step = orig_step
        CallbackHandler.on_step_begin = orig_begin
        CallbackHandler.on_step_end = orig_end
        Trainer.evaluate = orig_eval


def training_records(limit: int | None) -> Any:
    """The quickstart lora candidate's data (train/validation/test splits), as bakeoff builds it."""
    from bakeoff.training.config import DataSettings
    from bakeoff.training.data import build_training_data

    spec = DataSettings(kind="instruct", path=DATA / "contract-train.jsonl", limit=limit)
    return build_training_data(spec, system=SYSTEM, seed=0)


# -- the hand-written way ---------------------------------------------------------------------------------------
def hand_written_sft(
    model_dir: Path,
    records: list[dict],
    out: Path,
    *,
    steps: int,
    batch_size: int,
    max_length: int,
    tuned: bool,
    qlora: bool = False,
) -> dict[str, Any]:
    """A minimal transformers + peft + trl script, as a user writes it (``tuned``: fp32, no checkpointing;
    ``qlora``: the usual 4-bit NF4 recipe on a GPU, with TRL's defaults)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if qlora:
        from peft import prepare_model_for_kbit_training
        from transformers import BitsAndBytesConfig

        quant = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16,
        )
        model = AutoModelForCausalLM.from_pretrained(
            model_dir, quantization_config=quant, dtype=torch.bfloat16, device_map={"": 0}
        )
        model = prepare_model_for_kbit_training(model)
    else:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_config = LoraConfig(
        r=LORA["r"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    extra = {"bf16": False, "gradient_checkpointing": False} if tuned else {}
    args = SFTConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=batch_size,
        max_length=max_length,
        learning_rate=LEARNING_RATE,
        logging_steps=max(1, steps // 10),
        save_strategy="no",
        report_to="none",
        use_cpu=not qlora,
        disable_tqdm=True,
        **extra,
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(records),
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # (only to keep the benchmark's output readable)
    trainer.train()
    trainer.save_model(str(out))
    return {"wall_s": time.perf_counter() - t0, "trainer": trainer}


# -- bakeoff's way ----------------------------------------------------------------------------------------------
def bakeoff_sft(
    run_dir: Path,
    *,
    steps: int,
    batch_size: int,
    max_length: int,
    limit: int | None,
    model: str = EMBEDDED_MODEL,
    method: str = "lora",
) -> dict:
    """The ``finetuned`` agent's prepare(): the quickstart lora candidate with ``max_steps``."""
    from rich.console import Console

    from bakeoff.agents.finetuned import FineTunedAgent, FineTunedSettings
    from bakeoff.models.refs import parse_model_ref
    from bakeoff.paths import models_dir
    from bakeoff.run.context import RunContext

    settings = FineTunedSettings.model_validate(
        {
            "name": "lora",
            "agent": "finetuned",
            "system": SYSTEM,
            "train": {
                "method": method,
                "data": {"kind": "instruct", "path": str(DATA / "contract-train.jsonl"), "limit": limit},
                "max_steps": steps,
                "eval_every": steps,  # validation loss before and after (the default, ~10 times, is for longer runs)
                "learning_rate": LEARNING_RATE,
                "batch_size": batch_size,
                "max_length": max_length,
                "lora": LORA,
            },
        }
    )
    ctx = RunContext(
        task="qa",
        labels=[],
        base_model=parse_model_ref(model),
        recipe_dir=DATA.parent,
        recipe_name="bench-training",
        console=Console(quiet=True),
        run_dir=run_dir,
    )
    assert models_dir().is_dir()
    agent = FineTunedAgent(settings, ctx.for_candidate(settings.name))
    t0 = time.perf_counter()
    agent.prepare()
    wall = time.perf_counter() - t0
    return {"wall_s": wall, "summary": agent.trained.summary}


# -- FLOPs --------------------------------------------------------------------------------------------------------
def flops_per_token(model_dir: Path, *, r: int) -> dict[str, float]:
    """Work per trained token for LoRA on every linear layer (see the module docstring)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    frozen = trainable = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            frozen += module.in_features * module.out_features
            if module is not model.get_output_embeddings():
                trainable += r * (module.in_features + module.out_features)
    return {
        "frozen_matmul_params": frozen,
        "lora_params": trainable,
        "flops_per_token": 4 * frozen + 6 * trainable,
    }


def matmul_peak(n: int, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of an n×n matmul with the torch threads this process uses."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


# -- the benchmark ------------------------------------------------------------------------------------------------
def run(scale: Scale = "full") -> Result:
    import os

    import datasets  # noqa: F401  (imported before the clocks start: both ways would pay it once)
    import peft  # noqa: F401
    import torch
    import trl  # noqa: F401

    from bakeoff.models.embedded import ensure_imported

    quiet_libraries()
    cfg = CONFIGS[scale]
    model_dir = ensure_imported(EMBEDDED_MODEL.split(":", 1)[1], quiet=True)
    data = training_records(cfg["limit"])
    common = {"steps": cfg["steps"], "batch_size": cfg["batch_size"], "max_length": cfg["max_length"]}
    saved_omp = os.environ.get("OMP_NUM_THREADS")
    if scale == "toy":  # seconds, not minutes, on a busy machine: one thread for every way
        os.environ["OMP_NUM_THREADS"] = "1"
    default_threads = 1 if scale == "toy" else torch.get_num_threads()
    ways = ["hand_tuned", "bakeoff"]
    if os.environ.get("BENCH_TRL_DEFAULTS") == "1":
        ways.append("hand_defaults")
    try:
        runs = train_every_way(ways, cfg, model_dir, data, common, default_threads)
    finally:
        if saved_omp is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved_omp
    work = flops_per_token(model_dir, r=LORA["r"])
    peaks = add_efficiency(runs, work, cfg["peak_n"], default_threads)
    result = Result("training", scale)
    _add_measures(result, runs)
    result.raw = {
        "config": {**common, "examples": len(data.train), "lora": LORA, "model": EMBEDDED_MODEL},
        "matmul_peak_gflops": {f"{t}_threads": round(p / 1e9, 1) for t, p in sorted(peaks.items())},
        "matmul_n": cfg["peak_n"],
        **work,
        **{
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
            for name, r in runs.items()
        },
    }
    return result


def train_every_way(
    ways: list[str],
    cfg: dict[str, Any],
    model_dir: Path,
    data,
    common: dict[str, Any],
    default_threads: int,
) -> dict[str, dict[str, Any]]:
    """Train the same LoRA each way, metered; when bakeoff picks other torch threads than the default, the
    hand-written script runs once more on bakeoff's threads (``hand_same_threads``)."""
    import torch

    runs: dict[str, dict[str, Any]] = {}
    with isolated_home("bakeoff-bench-training-") as tmp:
        i = 0
        while i < len(ways):
            name = ways[i]
            i += 1
            threads = runs["bakeoff"]["torch_threads"] if name == "hand_same_threads" else default_threads
            torch.set_num_threads(threads)  # bakeoff chooses its own; the scripts keep torch's default
            with metered(cfg["cap_s"]) as meter:
                if name == "bakeoff":
                    out = bakeoff_sft(tmp / "run", limit=cfg["limit"], **common)
                    summary = out["summary"]
                    trained_tokens = summary["tokens_per_second"] * summary["train_seconds"]
                else:
                    out = hand_written_sft(
                        model_dir, data.train, tmp / name, tuned=name != "hand_defaults", **common
                    )
                    trained_tokens = out.pop("trainer")._total_train_tokens
            wall = out["wall_s"]
            runs[name] = {
                **meter.summary(),
                "wall_s": wall,
                "eval_s": meter.eval_seconds,
                "wall_tokens_per_s": trained_tokens / wall,
                "wall_tokens_per_s_excluding_eval": trained_tokens / max(1e-9, wall - meter.eval_seconds),
            }
            if name == "bakeoff" and runs[name]["torch_threads"] != default_threads:
                ways.append("hand_same_threads")  # separate the thread choice from the rest
    return runs


def add_efficiency(
    runs: dict[str, dict[str, Any]], work: dict[str, int], peak_n: int, default_threads: int
) -> dict[int, float]:
    """Each way's achieved GFLOP/s and fraction of the matmul peak on its threads; returns the peaks."""
    import torch

    peaks: dict[int, float] = {}
    for r in runs.values():  # the peak with the threads each way trained on
        threads = r["torch_threads"]
        if threads not in peaks:
            torch.set_num_threads(threads)
            peaks[threads] = matmul_peak(peak_n)
        r["achieved_gflops"] = r["step_tokens_per_s"] * work["flops_per_token"] / 1e9
        r["fraction_of_peak"] = r["achieved_gflops"] * 1e9 / peaks[threads]
    torch.set_num_threads(default_threads)
    return peaks


def _add_measures(result: Result, runs: dict[str, dict[str, Any]]) -> None:
    b, h = runs["bakeoff"], runs["hand_tuned"]
    # The equal-conditions ratio leads: the other one also counts the thread choice under a neighbour's load.
    if "hand_same_threads" in runs:
        result.add(
            "tokens_per_s_vs_script_same_threads",
            b["step_tokens_per_s"] / runs["hand_same_threads"]["step_tokens_per_s"],
            target=(">=", 1.0),
            note=f"equal conditions: both on {b['torch_threads']} thread(s)",
        )
    result.add(
        "tokens_per_s_vs_script",
        b["step_tokens_per_s"] / h["step_tokens_per_s"],
        target=None if "hand_same_threads" in runs else (">=", 1.0),
        note="script on torch's default threads: includes bakeoff's thread choice",
    )
    if "hand_defaults" in runs:
        result.add(
            "tokens_per_s_vs_script_trl_defaults",
            b["step_tokens_per_s"] / runs["hand_defaults"]["step_tokens_per_s"],
            note="TRL 1.x defaults on a CPU: bf16 autocast, activation checkpointing",
        )
    result.add(
        "wall_tokens_per_s_vs_script",
        b["wall_tokens_per_s"] / h["wall_tokens_per_s"],
        note="whole call; bakeoff also measures validation and test loss and checkpoints",
    )
    result.add(
        "wall_excluding_eval_vs_script",
        b["wall_tokens_per_s_excluding_eval"] / h["wall_tokens_per_s_excluding_eval"],
    )
    result.add("bakeoff_fraction_of_matmul_peak", b["fraction_of_peak"], unit="of peak")


def main(argv: list[str] | None = None) -> int:
    return cli("bench_training", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
