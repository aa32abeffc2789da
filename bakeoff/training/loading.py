"""Loading what training needs and what it made: the tokenizer, the base model as the method needs it, the
LoRA configuration, saved weights, and a generator over a trained candidate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from bakeoff.training.config import TrainSettings
from bakeoff.training.quantization import TrainingError, qlora_quantization_config
from bakeoff.training.ranks import local_rank

if TYPE_CHECKING:
    from bakeoff.training.request import TrainedModel

__all__ = ["load_base", "load_tokenizer", "load_trained", "load_weights", "lora_config"]


def load_tokenizer(model_dir: Path, chat_template: str | None):
    """The model's tokenizer, with ``chat_template`` instead of its own when given, and a padding token."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_base(model_dir: Path, method: str, device: str, *, training: bool):
    """The base model as the method needs it: 4-bit NF4 for qlora, bf16 on a GPU (fp32 master weights for
    full fine-tuning), fp32 on a CPU. On GPUs, each launched process loads onto its own device (``LOCAL_RANK``).

    Raises:
        TrainingError: the folder holds no loadable model.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {}
    if method == "qlora":
        kwargs.update(
            quantization_config=qlora_quantization_config(),
            dtype=torch.bfloat16,
            device_map={"": local_rank()},
        )
    elif device == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs.update(
            dtype=torch.float32 if (method == "full" and training) else half, device_map={"": local_rank()}
        )
    else:
        kwargs.update(dtype=torch.float32)
    try:
        return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    except OSError as exc:
        raise TrainingError(f"cannot load the base model from {model_dir}: {exc}") from None


def lora_config(settings: TrainSettings, model):
    """peft's ``LoraConfig`` for the ``lora:`` settings (``layers: N``: only the last N layers)."""
    from peft import LoraConfig

    lora = settings.lora
    layers = None
    if lora.layers is not None:
        total = int(getattr(model.config.get_text_config(), "num_hidden_layers", 0) or 0)
        if total and lora.layers < total:
            layers = list(range(total - lora.layers, total))
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha if lora.alpha is not None else 2 * lora.r,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        layers_to_transform=layers,
        bias="none",
        task_type="CAUSAL_LM",
    )


def load_weights(model, folder: Path, method: str) -> None:
    """Load saved weights (an adapter or a full model) into the model being trained."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, Any] = {}
    for path in files:
        state.update(load_file(path))
    if method == "full":
        model.load_state_dict(state, strict=False)
    else:
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, state)


def load_trained(trained: TrainedModel, *, name: str):
    """A :class:`~bakeoff.models.transformers_backend.TransformersGenerator` over a trained candidate.

    A LoRA adapter on a full-precision base is merged into the weights in memory (the same function, and
    generation runs at the base model's speed); a QLoRA adapter stays a peft model over the 4-bit base.
    """
    from bakeoff.models.transformers_backend import TransformersGenerator, pick_device
    from bakeoff.training.merge import apply_adapter

    if trained.merged_dir is not None:
        return TransformersGenerator.from_path(trained.merged_dir, name=name)
    if trained.method == "full":
        return TransformersGenerator.from_path(trained.weights_dir, name=name)
    from transformers import AutoTokenizer

    device = pick_device()
    tokenizer = AutoTokenizer.from_pretrained(trained.weights_dir)
    base = load_base(trained.base_dir, trained.method, device, training=False)
    if device == "cpu":
        base = base.to("cpu")
    model = apply_adapter(base, trained.weights_dir, merge=trained.method != "qlora")
    model.eval()
    return TransformersGenerator(model, tokenizer, name=name)
