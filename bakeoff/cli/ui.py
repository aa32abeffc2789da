"""``bakeoff ui``: start the Streamlit console on this machine."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["console_env", "console_url", "port_problem", "streamlit_command", "ui"]

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
    browser tab only when started from a terminal.

    ``-P`` keeps the working directory off ``sys.path``; the ``server.*`` settings that could open the
    console wider (the agent API, static files, CORS, XSRF) are pinned, whatever a ``config.toml`` says.
    """
    return [
        sys.executable,
        "-P",
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
        "--server.enableAgentApi",
        "false",
        "--server.enableStaticServing",
        "false",
        "--server.enableCORS",
        "true",
        "--server.enableXsrfProtection",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "minimal",
        "--global.developmentMode",
        "false",
    ]


def console_env(
    *,
    runs_dir: Path,
    recipes_dir: Path,
    plugins_dirs: list[Path],
    host: str,
    port: int,
    token: str | None,
    base: dict[str, str] | None = None,
) -> dict[str, str]:
    """The console's environment: where its runs and recipes are, the gate's token and address, and a
    ``PYTHONPATH`` of absolute folders only, plugin folders first (relative entries would mean whatever
    folder a process starts in)."""
    env = dict(os.environ if base is None else base)
    entries = [str(d.expanduser().resolve()) for d in plugins_dirs]
    for entry in (env.get("PYTHONPATH") or "").split(os.pathsep):
        if entry.strip():
            entries.append(os.path.abspath(Path(entry).expanduser()))
    env.update(
        BAKEOFF_RUNS_DIR=str(runs_dir.expanduser().resolve()),
        BAKEOFF_RECIPES_DIR=str(recipes_dir.expanduser().resolve()),
        BAKEOFF_UI_HOST=host,
        BAKEOFF_UI_PORT=str(port),
    )
    env.pop("BAKEOFF_UI_TOKEN", None)
    if token:
        env["BAKEOFF_UI_TOKEN"] = token
    if entries:
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(entries))
    else:
        env.pop("PYTHONPATH", None)
    env.setdefault("STREAMLIT_BROWSER_GATHER_USAGE_STATS", "false")
    return env


def console_url(host: str, port: int, token: str | None) -> str:
    """The address to open: the machine's name for a wildcard address, ``localhost`` for a local one."""
    import socket

    if host in LOCAL_HOSTS:
        shown = "localhost"
    elif host in ("0.0.0.0", "::", ""):
        shown = socket.gethostname()
    else:
        shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/" + (f"?token={token}" if token else "")


def _folder_problem(plugins_dirs: list[Path], recipes_dir: Path, runs_dir: Path) -> str | None:
    """Why the plugin folders cannot be used (the console writes in its recipes and runs folders)."""
    written = [recipes_dir.expanduser().resolve(), runs_dir.expanduser().resolve()]
    for folder in plugins_dirs:
        real = folder.expanduser().resolve()
        if not real.is_dir():
            return f"--plugins-dir {folder}: no such folder."
        for w in written:
            if real == w or w in real.parents:
                return f"--plugins-dir {folder} is inside {w}, which the console writes to; keep code elsewhere."
    return None


def ui(
    runs_dir: Annotated[
        Path, typer.Option("--runs-dir", help="Folder that holds runs.", envvar="BAKEOFF_RUNS_DIR")
    ] = Path("runs"),
    port: Annotated[int, typer.Option("--port", help="Port to serve on.", min=1, max=65535)] = 8501,
    host: Annotated[
        str,
        typer.Option(
            "--host", help="Address to listen on; any other than localhost needs the printed token."
        ),
    ] = "127.0.0.1",
    recipes_dir: Annotated[
        Path,
        typer.Option(
            "--recipes-dir",
            help="The only folder the Recipes page saves in (default ./recipes).",
            envvar="BAKEOFF_RECIPES_DIR",
        ),
    ] = Path("recipes"),
    plugins_dirs: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugins-dir",
            help="A folder of module:Class agent code runs started here may import (repeatable); "
            "otherwise only installed packages.",
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            help="The token a browser must bring (default: a new random one when --host is not localhost).",
            envvar="BAKEOFF_UI_TOKEN",
        ),
    ] = None,
) -> None:
    """Open the console: runs, comparisons, training curves, chat, recipe editor and blind arena."""
    import secrets

    from rich.console import Console

    err = Console(stderr=True, soft_wrap=True)
    plugins_dirs = list(plugins_dirs or [])
    problem = port_problem(host, port) or _folder_problem(plugins_dirs, recipes_dir, runs_dir)
    if problem:
        err.print(f"error: {problem}", style="red", highlight=False, soft_wrap=True)
        raise typer.Exit(2)
    if host not in LOCAL_HOSTS:
        token = token or secrets.token_urlsafe(24)
        err.print(
            f"warning: listening on {host}: anyone who can reach this port and has the token can read your "
            "runs, chat with your models and start runs on this machine. Keep the address secret; it travels "
            "unencrypted, so on a network you do not trust use an SSH tunnel instead.",
            style="yellow",
            highlight=False,
            soft_wrap=True,
        )
    import importlib.util

    # The console is a separate program (Streamlit runs ui/serve.py): locate it, never import it from the core.
    app_file = Path(importlib.util.find_spec("bakeoff.ui").origin).with_name("serve.py")
    env = console_env(
        runs_dir=runs_dir, recipes_dir=recipes_dir, plugins_dirs=plugins_dirs, host=host, port=port, token=token
    )
    err.print(
        f"bakeoff console on {console_url(host, port, token)}  (runs: {env['BAKEOFF_RUNS_DIR']}; "
        f"recipes: {env['BAKEOFF_RECIPES_DIR']}; Ctrl-C stops)",
        highlight=False,
        markup=False,
    )
    cmd = streamlit_command(app_file, host=host, port=port, interactive=sys.stdout.isatty())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, cmd, env)  # the console replaces this process: signals reach it directly
