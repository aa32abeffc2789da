"""GPU: QLoRA tokens/s and peak memory, the ``finetuned`` agent vs the usual hand-written QLoRA script.

Runs only where CUDA and bitsandbytes are present; anywhere else it reports itself skipped, with the reason.
Both train the same model in 4-bit NF4 (double quantization, bf16 compute) with LoRA r=16 on every linear
layer, on the quickstart's Q&A records, with the same batch size, ``max_length`` and steps; tokens/s is
measured over the optimizer steps as in the CPU training benchmark, and peak memory is
``torch.cuda.max_memory_allocated`` over each whole training call.

The model: ``BENCH_GPU_MODEL`` (a local folder or a hub id already in the Hugging Face cache), else the first
1B-8B instruct model found in the cache from :data:`CANDIDATES`, else the embedded 135M model (noted).
Nothing is downloaded.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import EMBEDDED_MODEL, Result, Scale, cli, isolated_home, quiet_libraries

CANDIDATES = [
    "meta-llama/Llama-3.2-1B-Instruct",
    "Qwen/Qwen2.5-1.5B-Instruct",
    "HuggingFaceTB/SmolLM2-1.7B-Instruct",
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "meta-llama/Llama-3.2-3B-Instruct",
    "Qwen/Qwen2.5-3B-Instruct",
    "mistralai/Mistral-7B-Instruct-v0.3",
    "meta-llama/Llama-3.1-8B-Instruct",
]
CONFIGS: dict[str, dict[str, Any]] = {
    "toy": {"steps": 3, "batch_size": 2, "max_length": 128, "limit": 32},
    "full": {"steps": 30, "batch_size": 8, "max_length": 512, "limit": None},
}


def why_skipped() -> str | None:
    """None where the benchmark can run, else the reason it cannot."""
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device (QLoRA needs one)"
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return "bitsandbytes is not installed (pip install -e '.[gpu]')"
    return None


def pick_model() -> tuple[str, Path]:
    """(model reference, local folder) of the model to train."""
    from bakeoff.agents.finetuned import local_model_dir
    from bakeoff.models.refs import parse_model_ref
    from bakeoff.training.quantization import TrainingError

    wanted = os.environ.get("BENCH_GPU_MODEL")
    for name in [wanted] if wanted else CANDIDATES:
        ref = parse_model_ref(f"hf:{name}")
        try:
            return str(ref), local_model_dir(ref)
        except TrainingError:
            if wanted:
                raise
    ref = parse_model_ref(EMBEDDED_MODEL)
    return str(ref), local_model_dir(ref)


def run(scale: Scale = "full") -> Result:
    result = Result("gpu", scale)
    reason = why_skipped()
    if reason is not None:
        result.skipped = reason
        return result

    import torch

    from bench.bench_training import bakeoff_sft, hand_written_sft, metered, training_records

    quiet_libraries()
    cfg = CONFIGS[scale]
    model_ref, model_dir = pick_model()
    data = training_records(cfg["limit"])
    common = {"steps": cfg["steps"], "batch_size": cfg["batch_size"], "max_length": cfg["max_length"]}
    runs: dict[str, dict[str, Any]] = {}
    with isolated_home("bakeoff-bench-gpu-") as tmp:
        for name in ("hand_qlora", "bakeoff_qlora"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            with metered() as meter:
                if name == "bakeoff_qlora":
                    bakeoff_sft(tmp / "run", limit=cfg["limit"], model=model_ref, method="qlora", **common)
                else:
                    out = hand_written_sft(
                        model_dir, data.train, tmp / name, tuned=False, qlora=True, **common
                    )
                    out.pop("trainer")
            torch.cuda.synchronize()
            runs[name] = {
                **meter.summary(),
                "wall_s": round(time.perf_counter() - t0, 2),
                "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
            }
    b, h = runs["bakeoff_qlora"], runs["hand_qlora"]
    result.add(
        "qlora_tokens_per_s_vs_script", b["step_tokens_per_s"] / h["step_tokens_per_s"], target=(">=", 1.0)
    )
    result.add(
        "qlora_peak_memory_vs_script", b["peak_memory_gib"] / h["peak_memory_gib"], note="below 1: less"
    )
    if model_ref == EMBEDDED_MODEL:
        result.notes.append("no 1B-8B model in the Hugging Face cache: trained the embedded 135M model")
    result.raw = {
        "model": model_ref,
        "device": torch.cuda.get_device_name(0),
        "config": common,
        **{
            name: {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
            for name, r in runs.items()
        },
    }
    return result


def main(argv: list[str] | None = None) -> int:
    return cli("bench_gpu", run, __doc__, argv)


if __name__ == "__main__":
    sys.exit(main())
