"""Which method really trains, and the 4-bit loading that QLoRA needs.

bitsandbytes is imported only when CUDA is present (it is the optional ``gpu`` extra); on a CPU a ``qlora``
candidate trains plain LoRA on the full-precision base, and the caller records that in the manifest.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from bakeoff.errors import BakeoffError

__all__ = [
    "QLORA_QUANTIZATION",
    "TrainingError",
    "cuda_available",
    "effective_method",
    "qlora_quantization_config",
]

# QLoRA (Dettmers et al., 2023): 4-bit NormalFloat weights, the quantization constants quantized again
# ("double quantization"), matrix products computed in bfloat16.
QLORA_QUANTIZATION: dict[str, Any] = {
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "nf4",
    "bnb_4bit_use_double_quant": True,
    "bnb_4bit_compute_dtype": "bfloat16",
}


class TrainingError(BakeoffError):
    """A candidate cannot be trained (missing library, bad data size, ...); the message says what to do."""


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def effective_method(requested: str, *, cuda: bool | None = None) -> tuple[str, str | None]:
    """The method that will train, and why it differs from the one requested (None when it does not).

    Raises:
        TrainingError: ``qlora`` on CUDA without bitsandbytes installed.
    """
    if requested != "qlora":
        return requested, None
    if not (cuda_available() if cuda is None else cuda):
        return "lora", (
            "qlora needs CUDA for 4-bit bitsandbytes weights; no GPU here, so it trains plain LoRA on the "
            "full-precision base instead"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise TrainingError(
            "method: qlora needs bitsandbytes; install the GPU extra: pip install 'bakeoff[gpu]'"
        )
    return "qlora", None


def qlora_quantization_config():
    """The ``BitsAndBytesConfig`` a QLoRA base is loaded with (building it needs no GPU)."""
    import torch
    from transformers import BitsAndBytesConfig

    kwargs = dict(QLORA_QUANTIZATION)
    kwargs["bnb_4bit_compute_dtype"] = getattr(torch, kwargs["bnb_4bit_compute_dtype"])
    return BitsAndBytesConfig(**kwargs)
