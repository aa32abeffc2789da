"""Safe defaults: the console listens on this machine only unless told otherwise."""

import pytest
import typer

from bakeoff.cli.app import app

pytestmark = pytest.mark.reliability


def test_console_binds_to_localhost_by_default():
    ui = typer.main.get_command(app).commands["ui"]
    [host] = [p for p in ui.params if p.name == "host"]
    assert host.default == "127.0.0.1"
