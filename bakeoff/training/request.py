"""What determines one trained model (:class:`TrainRequest`), where the result is (:class:`TrainedModel`), and
the cache key that names it."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bakeoff.training.cache import cache_key, file_identity, library_versions
from bakeoff.training.config import TrainSettings
from bakeoff.training.data import TrainingData
from bakeoff.training.quantization import cuda_available, effective_method

__all__ = ["TrainRequest", "TrainedModel", "hyperparameters", "training_device", "training_key"]


@dataclass
class TrainRequest:
    """Everything that determines one trained model."""

    candidate: str
    base_model: str  # the model reference, e.g. str(bakeoff.models.refs.DEFAULT_MODEL)
    model_dir: Path  # its local folder
    settings: TrainSettings
    data: TrainingData
    chat_template: str | None = None  # replaces the tokenizer's (the Alpaca template)
    # Extra transformers TrainerCallbacks (your own logging, an early stop); not part of the cache key.
    callbacks: list[Any] = field(default_factory=list)


@dataclass
class TrainedModel:
    """Where a trained candidate's weights are, and its ``summary.json``."""

    candidate: str
    base_model: str
    base_dir: Path
    method: str  # the method that trained
    weights_dir: Path  # adapter/ (lora, qlora) or model/ (full)
    merged_dir: Path | None
    cache_dir: Path
    summary: dict[str, Any] = field(default_factory=dict)


def hyperparameters(settings: TrainSettings) -> dict[str, Any]:
    """The settings that shape the weights (paths are left out: the data's content is hashed instead).

    ``gradient_checkpointing`` is left out too: it trades time for memory and computes the same weights, so
    turning it on after an out-of-memory error resumes from the checkpoint that training left behind.
    ``distributed`` (the global batch is split, not multiplied) and ``report_to`` are left out for the same
    reason: the same weights, whether trained on one process or several, logged or not.
    """
    hyper = settings.model_dump(
        mode="json", exclude={"merge", "gradient_checkpointing", "distributed", "report_to"}
    )
    data = hyper["data"]
    data.pop("path", None)
    if not isinstance(settings.data.validation, float | int):
        data.pop("validation", None)
    if settings.method == "full":
        hyper.pop("lora", None)
    return hyper


def training_device() -> str:
    return "cuda" if cuda_available() else "cpu"


def training_key(req: TrainRequest) -> tuple[str, dict[str, Any], str, str | None]:
    """The cache key of a request, what went into it, the method that will train and why it differs from
    the requested one (None when it does not)."""
    method, why = effective_method(req.settings.method)
    material = {
        "base_model": req.base_model,
        "model_files": file_identity(req.model_dir),
        "data": req.data.digest,
        "hyperparameters": hyperparameters(req.settings),
        "method": method,
        "chat_template": req.chat_template,
        "device": training_device(),
        "versions": library_versions(),
    }
    return cache_key(material), material, method, why
