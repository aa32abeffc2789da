"""How many CPU threads inference (generation, embeddings) should use right now.

Decoding runs hundreds of small operations per token, each ending at an OpenMP barrier. When another process
keeps a core busy, the thread that shares its core keeps arriving late and every barrier waits for it: on a
shared 2-core machine, batched generation with 2 threads was measured 5-10x slower than with 1, and embedding
one query 12x slower (1 s against 80 ms). So inference uses the cores that are idle now, measured from
``/proc/stat`` over a tenth of a second (and reused for a few seconds) — not the load average, which lags by
a minute; and a handful of texts, too little work to share, always runs on one thread.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

__all__ = ["cpu_threads", "idle_cores", "torch_threads"]

MEASURE_EVERY_S = 5.0
_last: tuple[float, int, str] | None = None  # (when, threads, why) of the last measurement


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(idle, total) jiffies of all CPUs, or None where /proc/stat is missing."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return idle, sum(values[:8])  # guest time is already counted in user


def idle_cores(sample_s: float = 0.1) -> float | None:
    """Cores idle over the next ``sample_s`` seconds (None where it cannot be measured)."""
    before = _cpu_times()
    if before is None:
        return None
    time.sleep(sample_s)
    after = _cpu_times()
    if after is None or after[1] <= before[1]:
        return None
    idle_share = (after[0] - before[0]) / (after[1] - before[1])
    return idle_share * (os.cpu_count() or 1)


def cpu_threads(*, small: bool = False) -> tuple[int, str]:
    """Torch threads for CPU inference, and why: ``OMP_NUM_THREADS`` when set; one for ``small`` work (a few
    texts); else one per core idle now."""
    global _last
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    cores = _cores()
    if cores == 1:
        return 1, "one core"
    if small:
        return 1, "small work"
    now = time.monotonic()
    if _last is not None and now - _last[0] < MEASURE_EVERY_S:
        return _last[1], _last[2]
    idle = idle_cores()
    if idle is None:
        threads, why = cores, "one per core"
    else:
        # A core more than half idle is worth a thread; at least one thread, at most one per core.
        threads, why = max(1, min(cores, int(idle + 0.5))), f"{idle:.1f} of {cores} cores idle"
    _last = (time.monotonic(), threads, why)
    return threads, why


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the previous number."""
    import torch

    before = torch.get_num_threads()
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n != before:
            torch.set_num_threads(before)
