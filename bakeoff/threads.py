"""How many CPU threads torch should use right now: one per core that other processes leave free.

Inference and LoRA training on a CPU run thousands of operations, each ending at an OpenMP barrier. When
another process keeps a core busy, the thread that shares that core keeps arriving late and every barrier waits
for it. Measured on a shared 2-core machine with one core taken by a neighbour: batched generation 5-10x
slower with 2 threads than with 1, one query's embedding 12x slower (1 s against 80 ms), a LoRA step 9x
slower (90 s against 10 s); on the idle machine 2 threads were 1.3-1.6x faster than 1.

So the thread count follows what the other processes use, measured from ``/proc/stat`` minus this process'
own CPU time over the time since the last decision (re-decided at most every :data:`DECIDE_EVERY_S`; the
first decision samples a tenth of a second) — not the load average, which lags by a minute and counts this
process too. ``OMP_NUM_THREADS`` overrides it all; a handful of texts (``small``) always gets one thread.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

__all__ = ["DECIDE_EVERY_S", "adjust_torch_threads", "cpu_threads", "others_busy_cores", "torch_threads"]

DECIDE_EVERY_S = 2.0
_lock = threading.Lock()
_mark: tuple[tuple[int, int], float, float] | None = None  # (/proc/stat idle+total, process CPU s, wall s)
_decision: tuple[float, int, str] | None = None  # (when, threads, why)


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


def _read() -> tuple[tuple[int, int], float, float] | None:
    times = _cpu_times()
    return None if times is None else (times, time.process_time(), time.monotonic())


def others_busy_cores(before, after) -> float | None:
    """Cores that other processes kept busy between two :func:`_read` marks (None: interval too short)."""
    (idle0, total0), cpu0, t0 = before
    (idle1, total1), cpu1, t1 = after
    if total1 - total0 <= 0 or t1 - t0 < 0.05:
        return None
    busy = (1 - (idle1 - idle0) / (total1 - total0)) * (os.cpu_count() or 1)
    own = (cpu1 - cpu0) / (t1 - t0)
    return max(0.0, busy - own)


def cpu_threads(*, small: bool = False) -> tuple[int, str]:
    """Torch threads for CPU work now, and why (see the module docstring)."""
    global _mark, _decision
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    cores = _cores()
    if cores == 1:
        return 1, "one core"
    if small:
        return 1, "small work"
    with _lock:
        now = time.monotonic()
        if _decision is not None and now - _decision[0] < DECIDE_EVERY_S:
            return _decision[1], _decision[2]
        before = _mark if _mark is not None and now - _mark[2] >= 0.05 else None
        if before is None:
            before = _read()
            time.sleep(0.1)
        after = _read()
        others = others_busy_cores(before, after) if before is not None and after is not None else None
        _mark = after
        if others is None:
            threads, why = cores, "one per core"
        else:
            # A core at least half free is worth a thread; at least one, at most one per core.
            threads = max(1, min(cores, int(cores - others + 0.5)))
            why = f"other processes busy on {others:.1f} of {cores} cores"
        _decision = (time.monotonic(), threads, why)
        return threads, why


@contextlib.contextmanager
def torch_threads(n: int | None = None) -> Iterator[None]:
    """Run the block with ``n`` torch threads (None: :func:`cpu_threads`), then restore the previous number."""
    import torch

    before = torch.get_num_threads()
    n = cpu_threads()[0] if n is None else n
    if n != before:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def adjust_torch_threads() -> int:
    """Set torch's threads to :func:`cpu_threads` now (cheap between decisions); returns the number."""
    import torch

    n = cpu_threads()[0]
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n
