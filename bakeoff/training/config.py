"""The ``train:`` block of a fine-tuned candidate: what to train on and how.

Pure pydantic (no torch): recipes are validated without loading any training library. Every field documents
itself where it is declared; validators raise with the keys to fix and never rewrite a value.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from bakeoff.recipe.fields import ExistingFile
from bakeoff.synth.jobs import FileOrSynthesized

__all__ = [
    "REPORT_EXTRAS",
    "DataSettings",
    "DistributedSettings",
    "LoraSettings",
    "TrainSettings",
    "parse_select",
]

# report_to integration -> (the module transformers imports, the bakeoff extra that installs it)
REPORT_EXTRAS = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "mlflow": ("mlflow", "mlflow"),
    "wandb": ("wandb", "wandb"),
}

_SELECT = re.compile(r"^(best_val|last|step:([1-9][0-9]*))$")


def parse_select(select: str) -> tuple[str, int | None]:
    """``"step:40"`` -> ``("step", 40)``; ``"best_val"`` -> ``("best_val", None)``."""
    match = _SELECT.match(select)
    if match is None:
        raise ValueError(f"select must be best_val, last or step:N (N ≥ 1), got {select!r}")
    if match.group(2):
        return "step", int(match.group(2))
    return select, None


class LoraSettings(BaseModel):
    """Low-rank adapter shape (used by `method: lora` and `qlora`)."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1, le=1024, description="Adapter rank.")
    alpha: float | None = Field(
        None, gt=0, description="Scaling numerator (the update is scaled by alpha / r); default 2 × r."
    )
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapter input.")
    target_modules: Literal["all-linear"] | list[str] = Field(
        "all-linear",
        description="`all-linear` (every linear layer but the output head, as in QLoRA) or module names such "
        "as [q_proj, v_proj].",
    )
    layers: int | None = Field(
        None,
        ge=1,
        description="Adapt only the last N transformer layers. Back-propagation then stops at the lowest adapted "
        "layer, which makes a step much cheaper on a CPU; default: every layer.",
    )

    @field_validator("target_modules")
    @classmethod
    def _no_empty_list(cls, value):
        if isinstance(value, list) and not value:
            raise ValueError("target_modules: give at least one module name, or 'all-linear'")
        if isinstance(value, list) and "lm_head" in value:
            raise ValueError(
                "target_modules: 'lm_head' cannot be adapted (TRL computes the loss from its weights)"
            )
        return value


class DataSettings(BaseModel):
    """Where the training examples come from and how they are split."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["causal", "instruct"] = Field(
        ...,
        description="`causal`: continued pre-training on the recipe's corpus chunks (needs a `corpus:` block); "
        "`instruct`: question/answer examples from `path`.",
    )
    path: FileOrSynthesized | None = Field(
        None,
        description="Instruct only: a JSONL file, one example per line, in Alpaca form (`instruction`, optional "
        "`input`, `output`) or chat form (`messages: [{role, content}, ...]`, trained on the last assistant turn); "
        "or `{synthesized: JOB}`, the output of one of the recipe's `synthesize:` jobs (question -> answer).",
    )
    template: Literal["chat", "alpaca"] = Field(
        "chat",
        description="Instruct only: render examples with the model's chat template (`chat`) or the Alpaca prompt "
        "(`alpaca`; the adapter then carries an Alpaca chat template, so answering uses it too).",
    )
    validation: float | ExistingFile | None = Field(
        None,
        description="Validation examples: a fraction held out from the data (0 < f < 0.5) or a file in the same "
        "form as `path`. Default 0.1 (at least one example).",
    )
    test: float | None = Field(
        None,
        ge=0.0,
        lt=0.5,
        description="Fraction held out as a test set (its loss is reported for the chosen checkpoint). Default "
        "0.1 for instruct data with 20+ examples, else 0; 0 for causal data, whose held-out chunks would be facts "
        "the model never reads.",
    )
    completion_only: bool = Field(
        True, description="Instruct only: compute the loss on the answer tokens only, not on the prompt."
    )
    limit: int | None = Field(None, ge=1, description="Use only the first N examples (quick iterations).")

    @field_validator("validation")
    @classmethod
    def _fraction_range(cls, value):
        if isinstance(value, float | int) and not isinstance(value, bool) and not 0.0 <= value < 0.5:
            raise ValueError(f"validation: a held-out fraction must be in [0, 0.5), got {value}")
        return value

    @model_validator(mode="after")
    def _per_kind(self, info: ValidationInfo) -> DataSettings:
        problems = []
        if self.kind == "instruct" and self.path is None:
            problems.append("kind: instruct needs `path:` (a JSONL file of examples)")
        if self.kind == "causal":
            extra = [key for key in ("path", "template", "completion_only") if key in self.model_fields_set]
            if extra:
                problems.append(
                    f"{', '.join(extra)}: only for kind: instruct; kind: causal trains on the recipe's `corpus:`"
                )
            if isinstance(self.validation, Path):
                problems.append("validation: kind: causal takes a fraction of the corpus chunks, not a file")
            if (info.context or {}).get("has_corpus") is False:
                problems.append("kind: causal trains on the recipe's corpus; add a top-level `corpus:` block")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class DistributedSettings(BaseModel):
    """Train across several processes (one per GPU; gloo processes on a CPU), launched by `bakeoff run`.

    `batch_size` stays the global micro-batch: each step's batch is split across the processes, so the
    adapter, its cache key and its loss curve are those of a one-process run with the same settings.
    """

    model_config = ConfigDict(extra="forbid")

    processes: int = Field(
        ...,
        ge=1,
        le=1024,
        description="Processes to train with (usually one per GPU). `batch_size` must be a multiple of it.",
    )
    config: ExistingFile | None = Field(
        None,
        description="An `accelerate config` YAML file (DDP, FSDP or DeepSpeed; relative to the recipe) passed to "
        "`accelerate launch --config_file`. Default: plain DDP. Needs CUDA; without it the processes run DDP "
        "on gloo through torchrun.",
    )
    port: int | None = Field(
        None, ge=1024, le=65535, description="Rendezvous port on 127.0.0.1; default: a free one."
    )


class TrainSettings(BaseModel):
    """How a fine-tuned candidate is trained. The adapter is cached by a hash of everything here (but
    `merge`, `gradient_checkpointing`, `distributed` and `report_to`, which do not change the weights), the data, the base model and the
    library versions."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["lora", "qlora", "full"] = Field(
        "lora",
        description="`lora`: low-rank adapters on a frozen base; `qlora`: the same on a 4-bit NF4 base (needs "
        "CUDA and the `gpu` extra; on a CPU it trains plain LoRA and says so); `full`: every weight (small models).",
    )
    data: DataSettings = Field(..., description="Training data and its train/validation/test split.")
    epochs: float = Field(3.0, gt=0, le=1000, description="Passes over the training examples.")
    max_steps: int | None = Field(
        None, ge=1, description="Stop after this many optimizer steps (overrides `epochs`)."
    )
    learning_rate: float = Field(2e-4, gt=0, le=1, description="Peak learning rate.")
    scheduler: Literal["cosine", "linear", "constant"] = Field(
        "cosine", description="Learning-rate schedule after warm-up."
    )
    warmup_ratio: float = Field(0.05, ge=0, lt=1, description="Fraction of the steps spent warming up.")
    weight_decay: float = Field(0.0, ge=0, le=1, description="AdamW weight decay.")
    batch_size: int = Field(8, ge=1, le=4096, description="Examples (or packed sequences) per micro-batch.")
    grad_accum: int = Field(
        1,
        ge=1,
        le=1024,
        description="Micro-batches per optimizer step (effective batch = batch_size × grad_accum).",
    )
    max_length: int = Field(
        512,
        ge=16,
        le=131072,
        description="Tokens per example; longer ones are truncated (packing: sequence length).",
    )
    packing: bool = Field(
        False,
        description="Pack several examples into each `max_length` sequence (no padding; examples cannot see each "
        "other). Fewer, fuller steps.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="Adapter shape (lora/qlora).")
    eval_every: int | None = Field(
        None, ge=1, description="Steps between validation-loss evaluations; default: about 10 per run."
    )
    save_every: int | None = Field(
        None,
        ge=1,
        description="Steps between resumable checkpoints (in the training cache); default: `eval_every`.",
    )
    seed: int = Field(0, description="Seed for the split, adapter initialisation and data order.")
    select: str = Field(
        "best_val",
        description="Which weights answer: `best_val` (lowest validation loss), `last` (end of training) or "
        "`step:N` (after optimizer step N). The choice is recorded in summary.json.",
    )
    merge: bool = Field(
        False,
        description="Also write the adapter merged into the base weights (`merged/`, loads without peft).",
    )
    gradient_checkpointing: bool | None = Field(
        None,
        description="Recompute activations to save memory. Default: on with CUDA, off on a CPU (where it only "
        "costs time).",
    )
    distributed: DistributedSettings | None = Field(
        None,
        description='Train across several processes through accelerate (README "Several GPUs"); the weights '
        "and the cache key stay those of a one-process run. Default: one process.",
    )
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(
        default_factory=list,
        description="Also log training to these trackers (the Trainer's `report_to`): `tensorboard` writes "
        "event files to `training/<candidate>/tensorboard/`; `mlflow` and `wandb` follow their own environment "
        "variables (MLFLOW_TRACKING_URI, WANDB_PROJECT). Each needs its extra, e.g. `bakeoff[tensorboard]`.",
    )

    @field_validator("select")
    @classmethod
    def _select_form(cls, value: str) -> str:
        parse_select(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainSettings:
        problems = []
        kind, step = parse_select(self.select)
        if kind == "step" and self.max_steps is not None and step is not None and step > self.max_steps:
            problems.append(f"select: step:{step} is after max_steps ({self.max_steps})")
        if kind == "best_val" and self.data.validation == 0:
            problems.append("select: best_val needs validation data; set data.validation > 0 or select: last")
        if self.method == "full" and self.merge:
            problems.append("merge: only applies to method lora/qlora (full fine-tuning has no adapter)")
        if self.method == "full" and "lora" in self.model_fields_set:
            problems.append("lora: only applies to method lora/qlora")
        if self.distributed is not None and self.batch_size % self.distributed.processes:
            problems.append(
                f"batch_size: {self.batch_size} is split across distributed.processes ({self.distributed.processes}); "
                "make it a multiple of the process count"
            )
        if len(set(self.report_to)) != len(self.report_to):
            problems.append("report_to: each tracker once")
        if problems:
            raise ValueError("; ".join(problems))
        return self
