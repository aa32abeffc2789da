"""TRL's ``SFTTrainer`` as bakeoff drives it: its configuration, and a subclass (built at run time, so TRL
is imported only when training) with a cheaper loss on a CPU."""

from __future__ import annotations

from pathlib import Path

from bakeoff.training.config import TrainSettings

__all__ = ["check_trackers", "sft_config", "sft_trainer_class"]


def check_trackers(settings: TrainSettings, candidate: str) -> None:
    """Fail before training when a ``report_to`` tracker's package is missing, naming the extra to install.

    Raises:
        TrainingError: a tracker is not installed.
    """
    import importlib.util

    from bakeoff.training.config import REPORT_EXTRAS
    from bakeoff.training.quantization import TrainingError

    for name in settings.report_to:
        module, extra = REPORT_EXTRAS[name]
        if importlib.util.find_spec(module) is None:
            raise TrainingError(
                f"{candidate}: train.report_to: {name} needs the `{module}` package, which is not installed; "
                f"pip install 'bakeoff[{extra}]' (or drop {name} from report_to)"
            )


def sft_config(
    s: TrainSettings,
    output_dir: Path,
    *,
    cuda: bool,
    half: bool,
    validation: bool,
    instruct: bool,
    gradient_checkpointing: bool,
    processes: int = 1,
):
    """The ``SFTConfig`` for the settings; the step counts are set once the prepared dataset's size is known.

    On a CPU: float32, no dataloader workers (the examples are already tokenized in memory); examples of
    similar length are batched together unless they are packed. With several processes each batch the
    sampler draws (``batch_size`` examples) is split between them (accelerate's ``split_batches``), so the
    global batch, the data order and the step count are those of one process. TensorBoard is added by the
    session (its events go to the cache folder); the other trackers in ``report_to`` go to the trainer.
    """
    from trl import SFTConfig

    eval_batch = max(s.batch_size, 16)
    eval_batch += -eval_batch % processes  # split_batches needs a multiple of the process count
    trackers = [name for name in s.report_to if name != "tensorboard"]
    return SFTConfig(
        output_dir=str(output_dir),
        per_device_train_batch_size=s.batch_size,
        per_device_eval_batch_size=eval_batch,
        accelerator_config={"split_batches": processes > 1},
        average_tokens_across_devices=True,
        gradient_accumulation_steps=s.grad_accum,
        learning_rate=s.learning_rate,
        lr_scheduler_type="constant_with_warmup" if s.scheduler == "constant" else s.scheduler,
        weight_decay=s.weight_decay,
        max_steps=1,  # set by the session, once the prepared (maybe packed) dataset's size is known
        max_length=s.max_length,
        packing=s.packing,
        completion_only_loss=s.data.completion_only if instruct else None,
        train_sampling_strategy="random" if s.packing else "group_by_length",
        eval_strategy="steps" if validation else "no",
        save_strategy="steps",
        save_total_limit=1,
        logging_strategy="steps",
        seed=s.seed,
        data_seed=s.seed,
        bf16=half,
        fp16=cuda and not half,
        use_cpu=not cuda,
        activation_checkpointing=gradient_checkpointing,  # (gradient_checkpointing is its deprecated alias)
        dataloader_num_workers=0,
        dataloader_pin_memory=cuda,
        report_to=trackers or "none",
        disable_tqdm=True,
        prediction_loss_only=True,
        dataset_num_proc=None,
    )


def sft_trainer_class(base):
    """TRL's SFTTrainer with a cheaper loss where its fused LM head cannot skip masked positions."""
    import torch
    import torch.nn.functional as F

    class BakeoffSFTTrainer(base):
        """On a CPU, TRL projects *every* position through the LM head (and computes entropy and accuracy over
        the whole vocabulary for its logs); for instruct data most positions are prompt tokens whose labels are
        masked. Here only labelled positions are projected: the same loss, about 15-20% less time per step
        for the embedded model. Anything unusual (GPU, DFT loss, MoE aux loss, label smoothing, a custom
        loss) goes through TRL unchanged."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            plain = (
                not return_outputs
                and self.args.loss_type == "nll"
                and self.compute_loss_func is None
                and self.label_smoother is None
                and not self.aux_loss_enabled
                and "labels" in inputs
            )
            unwrapped = self.accelerator.unwrap_model(model)
            core = unwrapped.get_base_model() if hasattr(unwrapped, "get_base_model") else unwrapped
            backbone = getattr(core, core.base_model_prefix, None)
            if not plain or backbone is None or next(core.parameters()).device.type == "cuda":
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            labels = inputs["labels"]
            kwargs = {k: v for k, v in inputs.items() if k not in ("labels", "seq_lengths")}
            kwargs["use_cache"] = False
            hidden = backbone(**kwargs).last_hidden_state[:, :-1]
            shifted = labels[:, 1:]
            mask = shifted != -100
            logits = core.get_output_embeddings()(hidden[mask])
            total = F.cross_entropy(logits.float(), shifted[mask], reduction="sum")
            count = mask.sum() if num_items_in_batch is None else num_items_in_batch
            loss = total / torch.as_tensor(count).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            if model.training:
                attention = inputs.get("attention_mask")
                local = (
                    attention.sum() if attention is not None else torch.tensor(inputs["input_ids"].numel())
                )
                # the tokens of the whole global batch, as TRL counts them (each process sees its share)
                self._total_train_tokens += int(self.accelerator.gather_for_metrics(local.reshape(1)).sum())
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return loss

    return BakeoffSFTTrainer
