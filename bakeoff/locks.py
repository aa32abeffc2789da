"""Inter-process file locks that say who holds them.

Two ``bakeoff run`` processes on one recipe share a vector store and a training cache; a lock file beside each
keeps their writes apart. The lock is an OS lock (``filelock``), so a holder killed with ``kill -9`` releases
it at once; the holder's PID is written beside the lock (``<lock>.pid``) only so that a waiting process can
say whom it is waiting for.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from bakeoff.errors import BakeoffError

__all__ = ["LockTimeout", "held_lock", "lock_holder"]


class LockTimeout(BakeoffError, TimeoutError):
    """The lock was not released in time; the message names the lock and its holder."""


def lock_holder(lock_path: Path) -> str:
    """``PID 1234`` for the process that holds (or last held) a lock, else ``another process``."""
    try:
        pid = Path(f"{lock_path}.pid").read_text(encoding="utf-8").strip()
    except OSError:
        return "another process"
    return f"PID {pid}" if pid.isdigit() else "another process"


@contextlib.contextmanager
def held_lock(
    lock_path: Path,
    *,
    on_wait: Callable[[str], None] | None = None,
    timeout_s: float | None = None,
) -> Iterator[None]:
    """Hold ``lock_path``; while another process holds it, call ``on_wait(holder)`` once and wait.

    Args:
        lock_path: the lock file (its folder is created).
        on_wait: told ``"PID 1234"`` (see :func:`lock_holder`) when the lock is busy.
        timeout_s: give up after this many seconds (None: wait as long as it takes).

    Raises:
        LockTimeout: ``timeout_s`` passed.
    """
    from filelock import FileLock, Timeout

    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    owner = Path(f"{lock_path}.pid")
    lock = FileLock(str(lock_path))
    try:
        lock.acquire(timeout=0.2)
    except Timeout:
        if on_wait is not None:
            on_wait(lock_holder(lock_path))
        try:
            lock.acquire(timeout=-1 if timeout_s is None else timeout_s)
        except Timeout:
            raise LockTimeout(
                f"gave up after {timeout_s:.0f}s waiting for lock {lock_path} held by {lock_holder(lock_path)}"
            ) from None
    try:
        owner.write_text(f"{os.getpid()}\n", encoding="utf-8")
        yield
    finally:
        with contextlib.suppress(OSError):
            owner.unlink()
        lock.release()
