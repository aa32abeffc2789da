"""Merging a LoRA adapter into its base weights — the one merge that training (``merge: true``, and answering
with a trained LoRA) and GGUF export share.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from bakeoff.io import atomic_path
from bakeoff.training.peft_compat import peft_wrapping

__all__ = ["apply_adapter", "merge_lora"]


def apply_adapter(model: Any, adapter: Path, *, merge: bool = True) -> Any:
    """``model`` with the LoRA adapter saved in ``adapter``: merged into its weights (an ordinary model that
    runs at the base's speed), or kept as a peft model (``merge=False``, e.g. over a 4-bit QLoRA base)."""
    from peft import PeftModel

    with peft_wrapping():
        with_adapter = PeftModel.from_pretrained(model, adapter)
    return with_adapter.merge_and_unload() if merge else with_adapter


def merge_lora(
    base: Path,
    adapter: Path,
    out: Path,
    *,
    device: Literal["cpu", "cuda"] = "cpu",
    dtype: Literal["float32", "auto"] = "float32",
) -> dict[str, Any]:
    """Merge a LoRA adapter into its base and save an ordinary model folder at ``out`` (atomically): the
    merged weights, the tokenizer with its chat template (the adapter's, else the base's) and the generation
    settings.

    Args:
        base: the base model's folder.
        adapter: the adapter's folder (``adapter_config.json`` and weights).
        out: the merged model's folder (replaced if it exists).
        device: where to merge; on ``cuda`` the base loads in bf16 (fp16 where bf16 is unsupported).
        dtype: on a CPU, ``float32`` (the precision a CPU trains in) or ``auto``: the checkpoint's own dtype,
            half the memory for a bf16 model (a non-float checkpoint is upcast to float32).

    Returns:
        ``{"dtype": the merged weights' dtype, "chat_template": whether the tokenizer has one}``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {"low_cpu_mem_usage": True}
    if device == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs.update(dtype=half, device_map={"": 0})
    else:
        kwargs.update(dtype=torch.float32 if dtype == "float32" else "auto")
    model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    if model.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        model = model.float()
    merged = apply_adapter(model, adapter)
    tokenizer = AutoTokenizer.from_pretrained(
        adapter if (adapter / "tokenizer_config.json").is_file() else base
    )
    with atomic_path(out) as tmp:
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if merged.generation_config is not None:
            merged.generation_config.save_pretrained(tmp)
    return {"dtype": str(merged.dtype).removeprefix("torch."), "chat_template": bool(tokenizer.chat_template)}
