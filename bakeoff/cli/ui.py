"""``bakeoff ui``: start the Streamlit console on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["port_problem", "streamlit_command", "ui"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def port_problem(host: str, port: int) -> str | None:
    """Why the console could not listen on ``host:port`` (one sentence), or None if it can.

    Binds a socket the way the web server will (``SO_REUSEADDR``), so a port left in TIME_WAIT by a previous
    console counts as free, and one with a live listener counts as taken.
    """
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"cannot listen on {host}:{port}: unknown host ({exc.strerror})."
    family, _, _, _, address = infos[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} on {host} is already in use (is another console running?); "
                    f"pick a free one with --port."
                )
            return f"cannot listen on {host}:{port}: {exc.strerror or exc}."
    return None


def streamlit_command(app: Path, *, host: str, port: int, interactive: bool) -> list[str]:
    """The ``streamlit run`` command line: no usage statistics, no e-mail prompt, no file watcher, and a
    browser tab only when started from a terminal."""
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(app),
        "--server.address",
        host,
        "--server.port",
        str(port),
        "--server.headless",
        "false" if interactive else "true",
        "--server.showEmailPrompt",
        "false",
        "--server.fileWatcherType",
        "none",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--global.developmentMode",
        "false",
    ]


def ui(
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Folder that holds runs.", envvar="BAKEOFF_RUNS_DIR")
    ] = Path("runs"),
    port: Annotated[int, typer.Option("--port", help="Port to serve on.", min=1, max=65535)] = 8501,
    host: Annotated[
        str,
        typer.Option("--host", help="Address to listen on; 0.0.0.0 exposes the console to the network."),
    ] = "127.0.0.1",
) -> None:
    """Open the console: runs, comparisons, training curves, chat, recipe editor and blind arena."""
    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    problem = port_problem(host, port)
    if problem:
        err.print(f"error: {problem}", style="red", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if host not in LOCAL_HOSTS:
        err.print(
            f"warning: listening on {host}: the console has no authentication — anyone who can reach "
            f"this port can read your runs, chat with your models and start runs on this machine.",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    import importlib.util

    # The console is a separate program (Streamlit runs ui/app.py): locate it, never import it from the core.
    app_file = Path(importlib.util.find_spec("bakeoff.ui").origin).with_name("app.py")
    env = {**os.environ, "BAKEOFF_RUNS_DIR": str(runs_dir.expanduser().resolve())}
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    shown = "localhost" if host in LOCAL_HOSTS else host
    err.print(
        f"bakeoff console on http://{shown}:{port}  (runs: {env['BAKEOFF_RUNS_DIR']}; Ctrl-C stops)"
    )
    cmd = streamlit_command(app_file, host=host, port=port, interactive=sys.stdout.isatty())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # the console replaces this process: signals reach it directly
