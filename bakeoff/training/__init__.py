"""Fine-tuning: the ``train:`` settings, training data, and the cached, resumable trainer.

May import the leaf modules and ``models``. Only the settings are imported eagerly (recipes are validated
without torch); import :mod:`bakeoff.training.trainer` to train. By job: ``request`` (what determines a trained
model, its cache key), ``cache`` (folders, locks, links), ``session`` (one training run), ``sft`` (TRL's
trainer and its configuration), ``callbacks`` (curves, progress, snapshots), ``oom`` (out-of-memory advice),
``loading``, ``merge`` (the one LoRA merge) and ``model_card``.
"""

from bakeoff.training.config import DataSettings, LoraSettings, TrainSettings, parse_select

__all__ = ["DataSettings", "LoraSettings", "TrainSettings", "parse_select"]
