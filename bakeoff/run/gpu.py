"""Peak GPU memory around a stage (training, one candidate's answers), for the verdict's cost.

Reads PyTorch's CUDA allocator statistics, and only when torch is already imported and sees a GPU: a run that
answers with llama.cpp or Ollama never pays torch's import for this, and reports no GPU peak (``None``).
"""

from __future__ import annotations

import sys

__all__ = ["peak_gpu_gb", "reset_gpu_peak"]


def _cuda():
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA install must not fail a run for a cost figure
        return None


def reset_gpu_peak() -> None:
    """Start measuring a new peak (no-op without a GPU in use)."""
    cuda = _cuda()
    if cuda is not None:
        cuda.reset_peak_memory_stats()


def peak_gpu_gb() -> float | None:
    """Peak memory PyTorch allocated on the GPUs since the last :func:`reset_gpu_peak`, GiB (``None``: no GPU
    in use)."""
    cuda = _cuda()
    if cuda is None:
        return None
    peak = sum(cuda.max_memory_allocated(i) for i in range(cuda.device_count()))
    return round(peak / 2**30, 2)
