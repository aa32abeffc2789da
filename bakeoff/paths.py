"""Where bakeoff keeps things on disk.

``BAKEOFF_HOME`` (default ``$XDG_CACHE_HOME/bakeoff`` or ``~/.cache/bakeoff``) holds imported models, the
training cache and vector stores. ``BAKEOFF_MODELS_DIR`` overrides only the imported-models folder, so tests
can isolate everything else while sharing the (slow to import) model.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["exports_cache_dir", "home", "models_dir", "training_cache_dir"]


def home() -> Path:
    env = os.environ.get("BAKEOFF_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "bakeoff"


def models_dir() -> Path:
    env = os.environ.get("BAKEOFF_MODELS_DIR")
    return Path(env).expanduser() if env else home() / "models"


def training_cache_dir() -> Path:
    return home() / "training"


def exports_cache_dir() -> Path:
    """GGUF exports of served forms, one folder per content hash of (adapter, base model, converter)."""
    return home() / "exports"
