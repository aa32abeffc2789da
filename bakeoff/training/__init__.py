"""Fine-tuning: the ``train:`` settings, training data, and the cached, resumable trainer.

Only the settings are imported eagerly (recipes are validated without torch); import
:mod:`bakeoff.training.trainer` to train.
"""

from bakeoff.training.config import DataSettings, LoraSettings, TrainSettings, parse_select

__all__ = ["DataSettings", "LoraSettings", "TrainSettings", "parse_select"]
