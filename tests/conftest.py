"""Shared fixtures. Tests never reach a network: HF_HUB_OFFLINE=1, and each test session gets its own
BAKEOFF_HOME (training cache, vector stores) while the imported embedded model is shared across sessions
(importing it is slow and its result is deterministic)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest_plugins = ["gguf_fixtures"]  # fake fine-tune runs and GGUF exports, shared by the export/Ollama tests
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Test recipes are written to temporary folders and point at the repository's data/; the project-root
# check is tested on its own (tests/test_recipe.py) with this turned off.
os.environ["BAKEOFF_ALLOW_OUTSIDE"] = "1"


def pytest_configure(config):
    from bakeoff import paths

    os.environ.setdefault("BAKEOFF_MODELS_DIR", str(paths.models_dir()))
    home = Path(config.cache.mkdir("bakeoff-home")) if config.cache else Path("/tmp/bakeoff-test-home")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["BAKEOFF_HOME"] = str(home)


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture
def bakeoff_cmd() -> list[str]:
    """The installed console script (falls back to ``python -m bakeoff``)."""
    exe = Path(sys.executable).with_name("bakeoff")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "bakeoff"]


@pytest.fixture(scope="session")
def embedded_generator():
    """The real embedded model (imported on first use), loaded once per test session."""
    from bakeoff.models.refs import parse_model_ref
    from bakeoff.models.registry import load_generator

    return load_generator(parse_model_ref("embedded:smollm2-135m-instruct"))
