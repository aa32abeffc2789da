"""Which process this is when a launcher (``accelerate launch``, ``torchrun``) started several: read from the
environment the launcher sets, so a one-process run needs nothing (and imports no torch) to know it is rank 0."""

from __future__ import annotations

import os

__all__ = ["barrier", "close_group", "is_main_process", "local_rank", "world_size"]


def world_size() -> int:
    """How many processes train together (1 outside a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process' device index on its machine (0 outside a launcher)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main_process() -> bool:
    """True in a one-process run and in rank 0 of a launched group: the one process that writes files."""
    return int(os.environ.get("RANK", "0")) == 0


def _group():
    if world_size() <= 1:
        return None
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def barrier() -> None:
    """Wait for every launched process (returns at once in a one-process run)."""
    dist = _group()
    if dist is not None:
        dist.barrier()


def close_group() -> None:
    """Tear the process group down once training is over (torch warns at exit otherwise)."""
    dist = _group()
    if dist is not None:
        dist.destroy_process_group()
