"""The one library warning bakeoff filters during training, by its text: peft's use of a deprecated name.

peft 0.21 reads ``model.is_gradient_checkpointing`` whenever it wraps a model (``PeftModel.__init__``, which
``SFTTrainer(peft_config=...)`` and ``PeftModel.from_pretrained`` both reach); transformers 5.24 deprecated
that property for ``is_activation_checkpointing`` and warns with a ``FutureWarning`` on every read. bakeoff
cannot change peft's code, so exactly that warning is ignored while peft wraps a model; every other warning
still shows. Drop this once peft reads the new name.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["PEFT_DEPRECATION", "peft_wrapping"]

PEFT_DEPRECATION = r"`is_gradient_checkpointing` is deprecated"


@contextmanager
def peft_wrapping() -> Iterator[None]:
    """Run the block (peft wrapping a model) without transformers' ``is_gradient_checkpointing`` warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=PEFT_DEPRECATION, category=FutureWarning)
        yield
