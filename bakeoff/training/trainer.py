"""Training one fine-tuned candidate with peft + TRL's ``SFTTrainer``, cached, resumable and observable.

:func:`train_candidate` is the whole story for one candidate, as a straight line:

1. decide the method that really trains (``qlora`` falls back to LoRA without CUDA) and hash the inputs
   (:mod:`bakeoff.training.request`);
2. under the key's file lock: reuse a complete cache folder, or train (:mod:`bakeoff.training.session`) —
   resuming from the last checkpoint a killed run left behind, in this process or in several launched
   ones (``train.distributed``, :mod:`bakeoff.training.distributed`) — recording the loss curves and keeping the
   weights ``select`` asks for; merge the adapter when ``merge: true`` (:mod:`bakeoff.training.merge`);
3. copy (hard-link) the artifacts into ``<run>/training/<candidate>/``.

:func:`load_trained` answers with the result (:mod:`bakeoff.training.loading`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from bakeoff.io import write_json_atomic
from bakeoff.training.cache import cache_dir, key_lock, link_tree
from bakeoff.training.loading import load_trained
from bakeoff.training.quantization import TrainingError
from bakeoff.training.request import TrainedModel, TrainRequest, training_key

__all__ = ["TrainRequest", "TrainedModel", "load_trained", "train_candidate", "training_key"]


def train_candidate(
    req: TrainRequest,
    *,
    console: Console,
    note: Callable[[str], None],
    out_dir: Path | None = None,
    retrain: bool = False,
    train_allowed: bool = True,
) -> TrainedModel:
    """Train a candidate, or reuse its cached weights, and export the artifacts to ``out_dir``.

    Args:
        req: the candidate's base model, settings and data.
        console: where progress and derived numbers are printed.
        note: records a fact in the run manifest (the QLoRA → LoRA fallback).
        out_dir: ``<run>/training/<candidate>/`` (None outside a run: the artifacts stay in the cache).
        retrain: discard a cached result and train again.
        train_allowed: False where training must not happen (the console): a cache miss is an error.

    Raises:
        TrainingError: the candidate cannot be trained as configured.
    """
    from bakeoff.training.sft import check_trackers

    check_trackers(req.settings, req.candidate)
    key, material, method, why = training_key(req)
    if why:
        note(f"{req.candidate}: {why}")
    folder = cache_dir(key)

    def waiting(lock_path: Path, holder: str) -> None:
        console.print(
            f"[yellow]{req.candidate}: waiting for lock {lock_path} held by {holder} (another run is training "
            f"the same adapter, cache key {key}); its weights are reused when it finishes[/]",
            soft_wrap=True,  # one line: scripts and tests grep it
        )

    with key_lock(key, on_wait=waiting):
        if retrain and folder.exists():
            console.print(f"{req.candidate}: --retrain: discarding cached training {key}")
            shutil.rmtree(folder)
        summary, hit = _cached_or_trained(req, method, key, material, folder, console, out_dir, train_allowed)
        weights = folder / ("model" if method == "full" else "adapter")
        merged = None
        if req.settings.merge:
            merged = folder / "merged"
            if not merged.is_dir():
                _merge(req, weights, merged, console)
    summary = {**summary, "cache_hit": hit}
    trained = TrainedModel(
        req.candidate, req.base_model, req.model_dir, method, weights, merged, folder, summary
    )
    if out_dir is not None:
        trained = _export(trained, out_dir)
    return trained


def _cached_or_trained(req, method, key, material, folder, console, out_dir, train_allowed):
    """The cached summary of a complete folder (and True), else train now (and False)."""
    from bakeoff.training.session import TrainingSession

    summary_path = folder / "summary.json"
    if summary_path.is_file():
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        console.print(
            f"[green]✓[/] {req.candidate}: cache hit — reusing the {summary['method']} weights trained in "
            f"{summary['train_seconds']:.0f}s (key {key}; `bakeoff run --retrain` trains again)"
        )
        return summary, True
    if not train_allowed:
        raise TrainingError(
            f"{req.candidate} has not been trained with these settings yet (cache key {key}); "
            f"train it first: bakeoff run RECIPE --only {req.candidate}"
        )
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "key.json", material)
    if req.settings.distributed is not None:
        from bakeoff.training.distributed import train_distributed

        return train_distributed(req, method, key, folder, console, out_dir), False
    return TrainingSession(req, method, key, folder, console, out_dir).run(), False


def _merge(req: TrainRequest, adapter: Path, out: Path, console: Console) -> None:
    """Write the adapter merged into a full-precision base as an ordinary model folder."""
    from bakeoff.models.transformers_backend import pick_device
    from bakeoff.training.merge import merge_lora

    with console.status(f"{req.candidate}: merging the adapter into the base weights…"):
        try:
            merge_lora(req.model_dir, adapter, out, device=pick_device())
        except OSError as exc:
            raise TrainingError(f"cannot load the base model from {req.model_dir}: {exc}") from None
    console.print(f"{req.candidate}: merged model written to {out}")


def _export(trained: TrainedModel, out_dir: Path) -> TrainedModel:
    """Hard-link the cached artifacts into the run folder; the run's copy says whether it was a cache hit."""
    out_dir.mkdir(parents=True, exist_ok=True)
    src = trained.cache_dir
    weights = out_dir / trained.weights_dir.name
    link_tree(trained.weights_dir, weights)
    merged = None
    if trained.merged_dir is not None:
        merged = out_dir / "merged"
        link_tree(trained.merged_dir, merged)
    for name in ("metrics.jsonl", "README.md"):
        if (src / name).is_file():
            shutil.copyfile(src / name, out_dir / name)
    if (src / "tensorboard").is_dir():  # train.report_to: [tensorboard]
        link_tree(src / "tensorboard", out_dir / "tensorboard")
    write_json_atomic(out_dir / "summary.json", trained.summary)
    return TrainedModel(
        trained.candidate,
        trained.base_model,
        trained.base_dir,
        trained.method,
        weights,
        merged,
        trained.cache_dir,
        trained.summary,
    )
