"""`bakeoff ui`: a clear error on a busy port, a warning and a token when exposed, a headless quiet Streamlit."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bakeoff.cli.ui import port_problem, streamlit_command


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_port_in_use_is_one_clear_error(tmp_path, bakeoff_cmd):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "already in use" in port_problem("127.0.0.1", port)
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*bakeoff_cmd, "ui", "--port", str(port), "--runs-dir", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use (is another console running?); "
        "pick a free one with --port."
    )
    assert time.perf_counter() - t0 < 10  # refused before Streamlit starts
    assert port_problem("127.0.0.1", free_port()) is None
    assert "unknown host" in port_problem("no-such-host.invalid", 8501)


def test_streamlit_flags_are_quiet_and_headless_off_a_terminal():
    cmd = streamlit_command(Path("app.py"), host="127.0.0.1", port=9999, interactive=False)
    flags = dict(zip(cmd[6::2], cmd[7::2], strict=True))
    assert cmd[1:5] == ["-P", "-m", "streamlit", "run"]  # -P: the working folder is not importable
    # settings that would open the console wider are pinned, whatever a config.toml says
    assert flags["--server.enableAgentApi"] == "false" and flags["--server.enableStaticServing"] == "false"
    assert flags["--server.enableXsrfProtection"] == "true" and flags["--server.enableCORS"] == "true"
    assert flags["--server.headless"] == "true" and flags["--browser.gatherUsageStats"] == "false"
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "9999"
    assert flags["--server.showEmailPrompt"] == "false"
    interactive = streamlit_command(Path("app.py"), host="127.0.0.1", port=9999, interactive=True)
    assert dict(zip(interactive[6::2], interactive[7::2], strict=True))["--server.headless"] == "false"


def test_exposed_host_warns_and_serves(tmp_path, bakeoff_cmd):
    port = free_port()
    proc = subprocess.Popen(
        [*bakeoff_cmd, "ui", "--host", "0.0.0.0", "--port", str(port), "--runs-dir", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 90
        healthy = False
        while time.time() < deadline and proc.poll() is None:
            try:
                healthy = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read()
                    == b"ok"
                )
            except OSError:
                healthy = False
            if healthy:
                break
            time.sleep(0.5)
        assert healthy, "the console did not come up"
    finally:
        proc.terminate()
        try:
            _, stderr = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate(timeout=30)
    assert "has the token" in stderr and f":{port}/?token=" in stderr
    assert "Traceback" not in stderr


def test_ui_help_lists_the_options(bakeoff_cmd):
    out = subprocess.run([*bakeoff_cmd, "ui", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for option in ("--runs-dir", "--port", "--host", "--recipes-dir", "--plugins-dir", "--token"):
        assert option in out.stdout
    assert sys.executable  # the console runs with the same interpreter (streamlit_command uses it)
