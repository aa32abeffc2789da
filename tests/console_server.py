"""Start and stop a real ``bakeoff ui`` for tests that talk to it over HTTP or drive it in Chromium."""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_console(
    bakeoff_cmd: list[str], tmp_path: Path, *args: str, cwd: Path | None = None
) -> tuple[subprocess.Popen, int, str | None]:
    """``bakeoff ui ARGS`` on a free port (runs in ``tmp_path/runs``), waited for; returns the process, the
    port and the token it printed (None when it printed none)."""
    port = free_port()
    log = tmp_path / f"console-{port}.log"
    proc = subprocess.Popen(
        [*bakeoff_cmd, "ui", "--port", str(port), "--runs-dir", str(tmp_path / "runs"), *args],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        text=True,
        cwd=cwd,
    )
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        stop_console(proc)
        raise AssertionError(f"the console did not come up:\n{log.read_text()}")
    found = re.search(r"/\?token=([A-Za-z0-9_\-]+)", log.read_text())
    return proc, port, found.group(1) if found else None


def stop_console(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
