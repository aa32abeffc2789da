"""Out of memory during training: recognising it, and the message that says what was kept and which
``train:`` knobs use less memory."""

from __future__ import annotations

from pathlib import Path

from bakeoff.training.config import TrainSettings
from bakeoff.training.quantization import TrainingError

__all__ = ["out_of_memory_detail", "out_of_memory_error"]


def out_of_memory_detail(exc: BaseException) -> str | None:
    """The first line of an out-of-memory error (CUDA's, or the CPU allocator's), None for any other error."""
    import torch

    text = str(exc).strip()
    if isinstance(exc, torch.OutOfMemoryError):
        return text.splitlines()[0] if text else "out of memory"
    if isinstance(exc, RuntimeError) and "can't allocate memory" in text:
        return text.splitlines()[0]
    return None


def out_of_memory_error(
    *,
    candidate: str,
    settings: TrainSettings,
    method: str,
    device: str,
    step: int,
    total: int,
    kept: tuple[Path, int] | None,
    lengths: list[int],
    checkpointing: bool,
    detail: str,
) -> TrainingError:
    """The error for running out of memory at ``step``: the checkpoint ``kept`` (if any) and the knobs."""
    s = settings
    where = "the GPU" if device == "cuda" else "this machine"
    if kept:
        saved = (
            f"Checkpoint kept at step {kept[1]}: {kept[0]}. Running the recipe again with the same train "
            "settings resumes from it (`bakeoff run --resume RUN` too"
            + ("; so does turning on gradient_checkpointing" if not checkpointing else "")
            + ")."
        )
    else:
        saved = "No optimizer step had finished, so there is no checkpoint to keep."
    knobs = []
    if not checkpointing:
        knobs.append(
            "`gradient_checkpointing: true` (recompute activations; same weights, keeps the checkpoint)"
        )
    if s.batch_size > 1:
        knobs.append(
            f"`batch_size: {max(1, s.batch_size // 2)}` with `grad_accum: {s.grad_accum * 2}` (same effective "
            f"batch of {s.batch_size * s.grad_accum})"
        )
    longest = max(lengths, default=s.max_length)
    knobs.append(
        f"`max_length: {max(16, min(s.max_length, longest) // 2)}` (now {s.max_length}; the longest "
        f"{'sequence' if s.packing else 'example'} has {longest} tokens)"
    )
    if method == "lora":
        knobs.append("`method: qlora` (4-bit base weights; needs CUDA)")
    elif method == "full":
        knobs.append("`method: lora` or `qlora` (train adapters, not every weight)")
    return TrainingError(
        f"{candidate}: {where} ran out of memory at step {step} of {total} ({detail}). {saved} "
        f"To use less memory, set in the candidate's `train:` block: {'; '.join(knobs)}. Changing batch_size, "
        "max_length or method trains from the start (a new cache key)."
    )
