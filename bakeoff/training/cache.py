"""The training cache: one folder per trained adapter, named by a content hash of what produced it.

The key covers the base model (its reference and the identity — name, size, modification time — of every
file in its folder), the rendered training data of every split, the hyper-parameters, the method actually
trained (a CPU fallback from QLoRA is a different adapter) and the versions of the libraries that train. So an
unchanged candidate is a cache hit and any change trains afresh. A folder is complete once ``summary.json``
is in it (written last); until then it holds resumable checkpoints. A file lock beside each folder keeps two
runs from training the same key at once.

Layout of ``training_cache_dir()/<key>/``::

    key.json            what went into the key (readable)
    metrics.jsonl       the loss curves, appended while training
    checkpoints/        resumable trainer checkpoints (deleted when training completes)
    snapshots/step-N/   weights kept for `select` (best validation loss so far, or step N)
    adapter/ | model/   the selected weights (LoRA adapter, or the full model) with the tokenizer
    merged/             the adapter merged into the base (``merge: true``)
    tensorboard/        TensorBoard event files (``report_to: [tensorboard]``)
    distributed-job.pkl the request handed to launched processes, while they train (``distributed:``)
    README.md           model card
    summary.json        written last: the folder is complete
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bakeoff.paths import training_cache_dir

__all__ = [
    "CACHE_FORMAT",
    "cache_dir",
    "cache_key",
    "file_identity",
    "key_lock",
    "library_versions",
    "link_tree",
]

# Bump when the training code changes in a way that makes old adapters wrong to reuse.
CACHE_FORMAT = 1
_TRAINING_LIBRARIES = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes")
_IGNORED_FILES = {".lock", ".tmp"}


def library_versions() -> dict[str, str]:
    """Versions of the libraries whose behaviour shapes a trained adapter."""
    out = {}
    for name in _TRAINING_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def file_identity(folder: Path) -> list[list[Any]]:
    """``[relative name, size, mtime_ns]`` for every file under a model folder, sorted.

    Identity rather than content: hashing a 14 GB model on every run would cost minutes, and a model folder
    changes by having files rewritten.
    """
    out = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix not in _IGNORED_FILES and not path.name.startswith("."):
            stat = path.stat()
            out.append([str(path.relative_to(folder)), stat.st_size, stat.st_mtime_ns])
    return out


def cache_key(material: dict[str, Any]) -> str:
    """A short hex digest of canonical JSON (``material`` must be JSON-serialisable)."""
    blob = json.dumps({"format": CACHE_FORMAT, **material}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def cache_dir(key: str) -> Path:
    return training_cache_dir() / key


@contextmanager
def key_lock(key: str, on_wait=None):
    """Hold the lock of one cache key; ``on_wait(lock_path, holder)`` is called once if another process holds
    it (``holder`` is ``"PID 1234"``). Waits as long as training takes."""
    from bakeoff.locks import held_lock

    lock_path = training_cache_dir() / f"{key}.lock"

    def waiting(holder: str) -> None:
        if on_wait is not None:
            on_wait(lock_path, holder)

    with held_lock(lock_path, on_wait=waiting):
        yield


def link_tree(src: Path, dst: Path) -> None:
    """Copy a folder by hard-linking its files (copying where links are impossible, e.g. across devices).

    Cache files are never modified in place, so a linked run folder cannot change behind the user's back.
    """
    if dst.exists():
        shutil.rmtree(dst)
    for path in sorted(src.rglob("*")):
        target = dst / path.relative_to(src)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(path, target)
        except OSError:
            shutil.copy2(path, target)
