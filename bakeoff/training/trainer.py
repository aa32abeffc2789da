"""Training one fine-tuned candidate with peft + TRL's ``SFTTrainer``, cached, resumable and observable.

:func:`train_candidate` is the whole story for one candidate, as a straight line:

1. decide the method that really trains (``qlora`` falls back to LoRA without CUDA) and hash the inputs;
2. under the key's file lock: reuse a complete cache folder, or train — resuming from the last checkpoint a
   killed run left behind — recording the loss curves and keeping the weights ``select`` asks for;
3. copy (hard-link) the artifacts into ``<run>/training/<candidate>/``.

Training on a CPU runs in float32 without gradient checkpointing, on every core, without dataloader workers
(the examples are already tokenized in memory); examples of similar length are batched together unless they
are packed.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from transformers import TrainerCallback

from bakeoff.io import append_jsonl, atomic_path, write_json_atomic
from bakeoff.training.cache import cache_dir, cache_key, file_identity, key_lock, library_versions, link_tree
from bakeoff.training.config import TrainSettings, parse_select
from bakeoff.training.data import TrainingData
from bakeoff.training.quantization import (
    TrainingError,
    cuda_available,
    effective_method,
    qlora_quantization_config,
)

__all__ = ["TrainRequest", "TrainedModel", "load_trained", "train_candidate", "training_key"]

METRIC_KEYS = ("step", "epoch", "train_loss", "val_loss", "learning_rate")


@dataclass
class TrainRequest:
    """Everything that determines one trained model."""

    candidate: str
    base_model: str  # the model reference, e.g. "embedded:smollm2-135m-instruct"
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


# -- inputs ----------------------------------------------------------------------------------------------------
def _hyperparameters(settings: TrainSettings) -> dict[str, Any]:
    """The settings that shape the weights (paths are left out: the data's content is hashed instead).

    ``gradient_checkpointing`` is left out too: it trades time for memory and computes the same weights, so
    turning it on after an out-of-memory error resumes from the checkpoint that training left behind.
    """
    hyper = settings.model_dump(mode="json", exclude={"merge", "gradient_checkpointing"})
    data = hyper["data"]
    data.pop("path", None)
    if not isinstance(settings.data.validation, float | int):
        data.pop("validation", None)
    if settings.method == "full":
        hyper.pop("lora", None)
    return hyper


def _device() -> str:
    return "cuda" if cuda_available() else "cpu"


def _cpu_threads() -> tuple[int, str]:
    """Torch threads for CPU training, and why: ``OMP_NUM_THREADS``, else one per core that other processes
    leave free (:mod:`bakeoff.threads`; re-decided during training by :class:`_FollowFreeCores`). A neighbour
    busy on one of 2 cores made a step with 2 threads ~9x slower than with 1."""
    from bakeoff.threads import cpu_threads

    return cpu_threads()


class _FollowFreeCores(TrainerCallback):
    """Before each CPU step, follow the cores other processes leave free (they start and stop mid-run)."""

    def on_step_begin(self, args, state, control, **kwargs):
        from bakeoff.threads import adjust_torch_threads

        adjust_torch_threads()


def training_key(req: TrainRequest) -> tuple[str, dict[str, Any], str, str | None]:
    """The cache key of a request, what went into it, the method that will train and why it differs from
    the requested one (None when it does not)."""
    method, why = effective_method(req.settings.method)
    material = {
        "base_model": req.base_model,
        "model_files": file_identity(req.model_dir),
        "data": req.data.digest,
        "hyperparameters": _hyperparameters(req.settings),
        "method": method,
        "chat_template": req.chat_template,
        "device": _device(),
        "versions": library_versions(),
    }
    return cache_key(material), material, method, why


# -- entry point -----------------------------------------------------------------------------------------------
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
    settings = req.settings
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
        summary_path = folder / "summary.json"
        if summary_path.is_file():
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
            console.print(
                f"[green]✓[/] {req.candidate}: cache hit — reusing the {summary['method']} weights trained in "
                f"{summary['train_seconds']:.0f}s (key {key}; `bakeoff run --retrain` trains again)"
            )
            hit = True
        elif not train_allowed:
            raise TrainingError(
                f"{req.candidate} has not been trained with these settings yet (cache key {key}); "
                f"train it first: bakeoff run RECIPE --only {req.candidate}"
            )
        else:
            folder.mkdir(parents=True, exist_ok=True)
            write_json_atomic(folder / "key.json", material)
            summary = _Session(req, method, key, folder, console, out_dir).run()
            hit = False
        weights = folder / ("model" if method == "full" else "adapter")
        merged = None
        if settings.merge:
            merged = folder / "merged"
            if not merged.is_dir():
                _merge(req, method, weights, merged, console)
    summary = {**summary, "cache_hit": hit}
    trained = TrainedModel(
        req.candidate, req.base_model, req.model_dir, method, weights, merged, folder, summary
    )
    if out_dir is not None:
        trained = _export(trained, out_dir)
    return trained


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


# -- models ----------------------------------------------------------------------------------------------------
def _load_tokenizer(model_dir: Path, chat_template: str | None):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_base(model_dir: Path, method: str, device: str, *, training: bool):
    """The base model as the method needs it: 4-bit NF4 for qlora, bf16 on a GPU (fp32 master weights for
    full fine-tuning), fp32 on a CPU."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    kwargs: dict[str, Any] = {}
    if method == "qlora":
        kwargs.update(
            quantization_config=qlora_quantization_config(), dtype=torch.bfloat16, device_map={"": 0}
        )
    elif device == "cuda":
        half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        kwargs.update(dtype=torch.float32 if (method == "full" and training) else half, device_map={"": 0})
    else:
        kwargs.update(dtype=torch.float32)
    try:
        return AutoModelForCausalLM.from_pretrained(model_dir, **kwargs)
    except OSError as exc:
        raise TrainingError(f"cannot load the base model from {model_dir}: {exc}") from None


def _lora_config(settings: TrainSettings, model):
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


def load_trained(trained: TrainedModel, *, name: str):
    """A :class:`~bakeoff.models.transformers_backend.TransformersGenerator` over a trained candidate.

    A LoRA adapter on a full-precision base is merged into the weights in memory (the same function, and
    generation runs at the base model's speed); a QLoRA adapter stays a peft model over the 4-bit base.
    """
    from bakeoff.models.transformers_backend import TransformersGenerator, pick_device

    if trained.merged_dir is not None:
        return TransformersGenerator.from_path(trained.merged_dir, name=name)
    if trained.method == "full":
        return TransformersGenerator.from_path(trained.weights_dir, name=name)
    from transformers import AutoTokenizer

    from bakeoff.training.merge import apply_adapter

    device = pick_device()
    tokenizer = AutoTokenizer.from_pretrained(trained.weights_dir)
    base = _load_base(trained.base_dir, trained.method, device, training=False)
    if device == "cpu":
        base = base.to("cpu")
    model = apply_adapter(base, trained.weights_dir, merge=trained.method != "qlora")
    model.eval()
    return TransformersGenerator(model, tokenizer, name=name)


def _merge(req: TrainRequest, method: str, adapter: Path, out: Path, console: Console) -> None:
    """Write the adapter merged into a full-precision base as an ordinary model folder."""
    from bakeoff.models.transformers_backend import pick_device
    from bakeoff.training.merge import merge_lora

    with console.status(f"{req.candidate}: merging the adapter into the base weights…"):
        try:
            merge_lora(req.model_dir, adapter, out, device=pick_device())
        except OSError as exc:
            raise TrainingError(f"cannot load the base model from {req.model_dir}: {exc}") from None
    console.print(f"{req.candidate}: merged model written to {out}")


# -- one training session --------------------------------------------------------------------------------------
def _last_checkpoint(root: Path) -> tuple[Path, int] | None:
    """The newest complete checkpoint (``trainer_state.json`` is written last); incomplete ones are removed."""
    if not root.is_dir():
        return None
    found = []
    for path in root.glob("checkpoint-*"):
        try:
            found.append((int(path.name.rpartition("-")[2]), path))
        except ValueError:
            continue
    for step, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").is_file():
            return path, step
        shutil.rmtree(path, ignore_errors=True)
    return None


def _read_metrics(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut short by a kill
            break
    return rows


class _Session:
    """One call of the trainer on one cache folder (fresh or resumed)."""

    def __init__(
        self,
        req: TrainRequest,
        method: str,
        key: str,
        folder: Path,
        console: Console,
        out_dir: Path | None,
    ) -> None:
        self.req = req
        self.s = req.settings
        self.method = method
        self.key = key
        self.folder = folder
        self.console = console
        self.out_dir = out_dir
        self.device = _device()
        self.select, self.select_step = parse_select(self.s.select)
        self.metrics_path = folder / "metrics.jsonl"
        self.snapshots = folder / "snapshots"

    # The run folder shows the curves live (the console reads them while training runs).
    def _write_metrics(self, rows: list[dict[str, Any]]) -> None:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        self.metrics_path.write_text(text, encoding="utf-8")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "metrics.jsonl").write_text(text, encoding="utf-8")

    def run(self) -> dict[str, Any]:
        import torch
        from datasets import Dataset
        from datasets.utils.logging import disable_progress_bar
        from transformers import set_seed
        from trl import SFTConfig, SFTTrainer

        disable_progress_bar()
        req, s = self.req, self.s
        cuda = self.device == "cuda"
        why_threads = ""
        if not cuda:
            threads, why_threads = _cpu_threads()
            torch.set_num_threads(threads)
        resume = _last_checkpoint(self.folder / "checkpoints")
        rows = _read_metrics(self.metrics_path)
        if resume is None:
            rows = []
            shutil.rmtree(self.snapshots, ignore_errors=True)
        else:
            rows = [r for r in rows if r["step"] <= resume[1]]
            for snap in self.snapshots.glob("step-*"):
                if int(snap.name.partition("-")[2]) > resume[1]:
                    shutil.rmtree(snap)
        self._write_metrics(rows)

        tokenizer = _load_tokenizer(req.model_dir, req.chat_template)
        model = _load_base(req.model_dir, self.method, self.device, training=True)
        gradient_checkpointing = s.gradient_checkpointing if s.gradient_checkpointing is not None else cuda
        if self.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=gradient_checkpointing)
        peft_config = None if self.method == "full" else _lora_config(s, model)
        data = req.data
        train_ds = Dataset.from_list(data.train)
        val_ds = Dataset.from_list(data.validation) if data.validation else None
        half = cuda and torch.cuda.is_bf16_supported()
        args = SFTConfig(
            output_dir=str(self.folder / "checkpoints"),
            per_device_train_batch_size=s.batch_size,
            per_device_eval_batch_size=max(s.batch_size, 16),
            gradient_accumulation_steps=s.grad_accum,
            learning_rate=s.learning_rate,
            lr_scheduler_type="constant_with_warmup" if s.scheduler == "constant" else s.scheduler,
            weight_decay=s.weight_decay,
            max_steps=1,  # set below, once the prepared (maybe packed) dataset's size is known
            max_length=s.max_length,
            packing=s.packing,
            completion_only_loss=s.data.completion_only if data.kind == "instruct" else None,
            train_sampling_strategy="random" if s.packing else "group_by_length",
            eval_strategy="steps" if val_ds is not None else "no",
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
            report_to="none",
            disable_tqdm=True,
            prediction_loss_only=True,
            dataset_num_proc=None,
        )
        trainer = _trainer_class(SFTTrainer)(
            model=model,
            args=args,
            train_dataset=train_ds,
            eval_dataset=val_ds,
            processing_class=tokenizer,
            peft_config=peft_config,
        )
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)  # bakeoff draws its own progress

        # Derived numbers, then the real step counts.
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
        batches = math.ceil(len(lengths) / s.batch_size)
        per_epoch = max(1, math.ceil(batches / s.grad_accum))
        total = s.max_steps or max(1, math.ceil(s.epochs * per_epoch))
        if self.select == "step" and self.select_step is not None and self.select_step > total:
            raise TrainingError(
                f"{req.candidate}: select: step:{self.select_step} but training runs {total} steps; pick a step "
                f"≤ {total} or raise epochs/max_steps"
            )
        eval_every = s.eval_every or max(1, round(total / 10))
        save_every = s.save_every or eval_every
        args.max_steps = total
        args.eval_steps = eval_every
        args.save_steps = save_every
        args.logging_steps = max(1, min(eval_every, math.ceil(total / 50)))
        args.warmup_steps = int(s.warmup_ratio * total)
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        params = sum(p.numel() for p in trainer.model.parameters())
        tokens_epoch = sum(lengths)
        effective_batch = s.batch_size * s.grad_accum
        what = "sequences" if s.packing else "examples"
        shape = (
            "every weight"
            if self.method == "full"
            else f"r={s.lora.r} α={s.lora.alpha or 2 * s.lora.r:g} on {s.lora.target_modules}"
            + (f" (last {s.lora.layers} layers)" if s.lora.layers else "")
        )
        precision = "4-bit NF4 base, bf16 compute" if self.method == "qlora" else ("bf16" if half else "fp32")
        self.console.print(
            f"[bold]train {req.candidate}[/] · {self.method} {shape} · {trainable / 1e6:.2f}M trainable of "
            f"{params / 1e6:.0f}M parameters\n"
            f"  data: {data.kind} from {data.source}: {len(data.train)} train / {len(data.validation)} val / "
            f"{len(data.test)} test examples; {len(lengths)} {what}, {tokens_epoch:,} tokens per epoch "
            f"(mean {tokens_epoch / max(1, len(lengths)):.0f}, max {max(lengths, default=0)})\n"
            f"  steps: batch {s.batch_size} × accumulation {s.grad_accum} = {effective_batch} per step; "
            f"{per_epoch} steps per epoch; {total} steps (≈{total / per_epoch:.2f} epochs); eval every "
            f"{eval_every}, checkpoint every {save_every}\n"
            f"  device: {self.device}, {precision}"
            + (f", {torch.get_num_threads()} thread(s) ({why_threads})" if not cuda else "")
            + f", gradient checkpointing {'on' if gradient_checkpointing else 'off'}"
        )

        recorder = _Recorder(self, rows, total, eval_every)
        trainer.add_callback(recorder)
        if not cuda:
            trainer.add_callback(_FollowFreeCores())
        for callback in req.callbacks:
            trainer.add_callback(callback)
        started = time.perf_counter()
        out_of_memory = None
        try:
            with recorder.progress:
                if resume is None and val_ds is not None:
                    trainer.evaluate()  # the step-0 validation loss: the curve starts at the untrained model
                elif resume is not None:
                    self.console.print(
                        f"{req.candidate}: resuming from step {resume[1]} of {total} ({resume[0].name} in the "
                        "cache)"
                    )
                # The sampler draws the epoch's data order from the global RNG when the epoch starts: seeding it
                # here gives a resumed run the order of an uninterrupted one (the checkpoint's RNG state, which
                # drives dropout, is restored once the finished batches are skipped).
                set_seed(s.seed)
                trainer.train(resume_from_checkpoint=str(resume[0]) if resume else None)
        except torch.OutOfMemoryError as exc:
            out_of_memory = str(exc).strip().splitlines()[0] if str(exc).strip() else "out of memory"
        except RuntimeError as exc:
            if "can't allocate memory" not in str(exc):  # the CPU allocator's out-of-memory
                raise
            out_of_memory = str(exc).strip().splitlines()[0]
        # handled outside `except`: the traceback no longer pins the activations
        if out_of_memory is not None:
            raise self._out_of_memory(
                trainer, recorder, total, lengths, gradient_checkpointing, out_of_memory
            )
        train_seconds = time.perf_counter() - started
        recorder.flush()
        return self._finish(trainer, recorder, total, train_seconds, resume, lengths)

    def _out_of_memory(
        self, trainer, recorder, total: int, lengths: list[int], checkpointing: bool, detail: str
    ) -> TrainingError:
        """Keep what was trained (a checkpoint at the last finished step) and say which knobs use less memory."""
        import gc

        import torch

        recorder.flush()
        s, step = self.s, trainer.state.global_step
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        kept = _last_checkpoint(self.folder / "checkpoints")
        if step > (kept[1] if kept else 0):
            try:
                trainer._save_checkpoint(
                    trainer.model, trial=None
                )  # weights, optimizer, scheduler, RNG, state
            except Exception as exc:  # saving can fail for the same reason; the last checkpoint stays
                self.console.print(f"[red]{self.req.candidate}: could not save step {step}: {exc}[/]")
            kept = _last_checkpoint(self.folder / "checkpoints")
        where = "the GPU" if self.device == "cuda" else "this machine"
        if kept:
            saved = (
                f"Checkpoint kept at step {kept[1]}: {kept[0]}. Running the recipe again with the same train "
                "settings resumes from it (`bakeoff run --resume RUN` too"
                + ("; so does turning on gradient_checkpointing" if not checkpointing else "")
                + ")."
            )
        else:
            saved = "No optimizer step had finished, so there is no checkpoint to keep."
        knobs = []
        if not checkpointing:
            knobs.append(
                "`gradient_checkpointing: true` (recompute activations; same weights, keeps the checkpoint)"
            )
        if s.batch_size > 1:
            knobs.append(
                f"`batch_size: {max(1, s.batch_size // 2)}` with `grad_accum: {s.grad_accum * 2}` (same effective "
                f"batch of {s.batch_size * s.grad_accum})"
            )
        longest = max(lengths, default=s.max_length)
        knobs.append(
            f"`max_length: {max(16, min(s.max_length, longest) // 2)}` (now {s.max_length}; the longest "
            f"{'sequence' if s.packing else 'example'} has {longest} tokens)"
        )
        if self.method == "lora":
            knobs.append("`method: qlora` (4-bit base weights; needs CUDA)")
        elif self.method == "full":
            knobs.append("`method: lora` or `qlora` (train adapters, not every weight)")
        return TrainingError(
            f"{self.req.candidate}: {where} ran out of memory at step {step} of {total} ({detail}). {saved} "
            f"To use less memory, set in the candidate's `train:` block: {'; '.join(knobs)}. Changing batch_size, "
            "max_length or method trains from the start (a new cache key)."
        )

    def _finish(self, trainer, recorder, total, train_seconds, resume, lengths) -> dict[str, Any]:
        """Choose the weights, measure the test loss, write the artifacts and the summary (last)."""
        req, s = self.req, self.s
        rows = recorder.rows
        if self.select == "best_val" and recorder.best_step is not None:
            selected = recorder.best_step
        elif self.select == "step" and self.select_step is not None:
            selected = self.select_step
        else:
            selected = total
        weights_name = "model" if self.method == "full" else "adapter"
        with atomic_path(self.folder / weights_name) as tmp:
            if selected == total:
                trainer.model.save_pretrained(tmp, safe_serialization=True)
            else:
                shutil.copytree(self.snapshots / f"step-{selected}", tmp)
                _load_weights(trainer.model, tmp, self.method)
            trainer.processing_class.save_pretrained(tmp)

        test_loss = None
        if req.data.test:
            from datasets import Dataset

            out = trainer.evaluate(Dataset.from_list(req.data.test), metric_key_prefix="test")
            test_loss = out.get("test_loss")
        train_losses = [r["train_loss"] for r in rows if r["train_loss"] is not None]
        val_rows = [r for r in rows if r["val_loss"] is not None]
        selected_val = next((r["val_loss"] for r in val_rows if r["step"] == selected), None)
        summary = {
            "candidate": req.candidate,
            "method": self.method,
            "requested_method": s.method,
            "select": s.select,
            "selected_step": selected,
            "total_steps": total,
            "train_examples": len(req.data.train),
            "val_examples": len(req.data.validation),
            "test_examples": len(req.data.test),
            "hyperparameters": _hyperparameters(s),
            "initial_val_loss": val_rows[0]["val_loss"] if val_rows and val_rows[0]["step"] == 0 else None,
            "final_train_loss": train_losses[-1] if train_losses else None,
            "final_val_loss": val_rows[-1]["val_loss"] if val_rows else None,
            "best_val_loss": min((r["val_loss"] for r in val_rows), default=None),
            "selected_val_loss": selected_val,
            "test_loss": test_loss,
            "cache_key": self.key,
            "cache_hit": False,
            "resumed_from_step": resume[1] if resume else None,
            "train_seconds": round(train_seconds, 2),
            "tokens_per_second": round(recorder.tokens / train_seconds, 1) if train_seconds > 0 else 0.0,
            "tokens_per_epoch": sum(lengths),
            "base_model": req.base_model,
            "data": {"kind": req.data.kind, "source": req.data.source, "sha256": req.data.digest},
            "device": self.device,
            "versions": library_versions(),
        }
        (self.folder / "README.md").write_text(_model_card(summary), encoding="utf-8")
        shutil.rmtree(self.folder / "checkpoints", ignore_errors=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)
        write_json_atomic(self.folder / "summary.json", summary)  # last: the folder is complete
        best = f", best val {summary['best_val_loss']:.4f}" if summary["best_val_loss"] is not None else ""
        self.console.print(
            f"[green]✓[/] {req.candidate}: trained {total} steps in {train_seconds:.0f}s "
            f"({summary['tokens_per_second']:.0f} tokens/s); val loss {_fmt(summary['initial_val_loss'])} → "
            f"{_fmt(summary['final_val_loss'])}{best}; selected step {selected} ({s.select})"
        )
        return summary


def _trainer_class(base):
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
                if "attention_mask" in inputs:
                    self._total_train_tokens += int(inputs["attention_mask"].sum())
                else:
                    self._total_train_tokens += int(inputs["input_ids"].numel())
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return loss

    return BakeoffSFTTrainer


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _load_weights(model, folder: Path, method: str) -> None:
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


class _Recorder(TrainerCallback):
    """Writes the curves, draws the progress bar, keeps the weights ``select`` needs."""

    def __init__(self, session: _Session, rows: list[dict[str, Any]], total: int, eval_every: int) -> None:
        from bakeoff.progress import progress_bar

        self.session = session
        self.rows = rows
        self.total = total
        self.eval_every = eval_every
        self.pending: dict[str, Any] | None = None
        self.tokens = 0
        val_rows = [r for r in rows if r["val_loss"] is not None]
        best = min(val_rows, key=lambda r: r["val_loss"], default=None)
        self.best_step: int | None = None
        self.best_val = math.inf
        if best is not None and (session.snapshots / f"step-{best['step']}").is_dir():
            self.best_step, self.best_val = best["step"], best["val_loss"]
        self.progress = progress_bar(session.console, "{task.fields[losses]}")
        done = rows[-1]["step"] if rows else 0
        self.task = self.progress.add_task(
            f"train {session.req.candidate}", total=total, completed=done, losses=self._losses()
        )

    def _losses(self) -> str:
        train = next((r["train_loss"] for r in reversed(self.rows) if r["train_loss"] is not None), None)
        val = next((r["val_loss"] for r in reversed(self.rows) if r["val_loss"] is not None), None)
        return f"loss {_fmt(train)} · val {_fmt(val)}"

    def _evaluates(self, step: int) -> bool:
        s = self.session
        return (
            step % self.eval_every == 0
            or step == self.total
            or (s.select == "step" and step == s.select_step)
        )

    def _append(self, row: dict[str, Any]) -> None:
        self.rows.append({k: row.get(k) for k in METRIC_KEYS})
        for path in self._metric_files():
            append_jsonl(path, self.rows[-1:], fsync=False)
        self.progress.update(self.task, losses=self._losses())

    def _metric_files(self) -> list[Path]:
        s = self.session
        out = [s.metrics_path]
        if s.out_dir is not None:
            out.append(s.out_dir / "metrics.jsonl")
        return out

    def flush(self) -> None:
        if self.pending is not None:
            self._append(self.pending)
            self.pending = None

    # -- TrainerCallback ------------------------------------------------------------------------------------
    def on_step_end(self, args, state, control, **kwargs):
        if self._evaluates(state.global_step) and self.session.req.data.validation:
            control.should_evaluate = True
            control.should_log = True
        self.progress.update(self.task, completed=state.global_step)
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = state.global_step
        epoch = float(state.epoch or 0.0)
        if "loss" in logs:
            self.flush()
            self.tokens = int(logs.get("num_tokens", self.tokens))
            row = {
                "step": step,
                "epoch": round(epoch, 4),
                "train_loss": float(logs["loss"]),
                "val_loss": None,
                "learning_rate": float(logs["learning_rate"]) if "learning_rate" in logs else None,
            }
            if self._evaluates(step) and self.session.req.data.validation:
                self.pending = row  # the validation loss of this step follows
            else:
                self._append(row)
        elif "eval_loss" in logs:
            if self.pending is not None and self.pending["step"] == step:
                self.pending["val_loss"] = float(logs["eval_loss"])
                self.flush()
            else:
                self.flush()
                self._append(
                    {
                        "step": step,
                        "epoch": round(epoch, 4),
                        "train_loss": None,
                        "val_loss": float(logs["eval_loss"]),
                        "learning_rate": None,
                    }
                )

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        if not metrics or "eval_loss" not in metrics or model is None:
            return
        s = self.session
        step, val = state.global_step, float(metrics["eval_loss"])
        keep = (s.select == "best_val" and val < self.best_val) or (
            s.select == "step" and step == s.select_step
        )
        if keep:
            model.save_pretrained(s.snapshots / f"step-{step}", safe_serialization=True)
            if s.select == "best_val":
                self.best_step, self.best_val = step, val

    def on_save(self, args, state, control, **kwargs):
        # The checkpoint of this step is on disk: snapshots that can no longer be selected may go. (Done here,
        # not at evaluation, so a run killed between the two still finds its best snapshot when it resumes.)
        s = self.session
        wanted = {self.best_step, s.select_step}
        for snap in s.snapshots.glob("step-*"):
            if int(snap.name.partition("-")[2]) not in wanted:
                shutil.rmtree(snap, ignore_errors=True)


def _model_card(summary: dict[str, Any]) -> str:
    hp = summary["hyperparameters"]
    lines = [
        "---",
        f"base_model: {summary['base_model']}",
        "library_name: peft" if summary["method"] != "full" else "library_name: transformers",
        "tags: [bakeoff, sft, trl, " + summary["method"] + "]",
        "---",
        "",
        f"# {summary['candidate']}",
        "",
        f"A {summary['method']} fine-tune of `{summary['base_model']}` trained by bakeoff with TRL's SFTTrainer"
        + (
            f" (requested: {summary['requested_method']})"
            if summary["requested_method"] != summary["method"]
            else ""
        )
        + ".",
        "",
        "## Data",
        "",
        f"- kind: {summary['data']['kind']}, from {summary['data']['source']}",
        f"- examples: {summary['train_examples']} train, {summary['val_examples']} validation, "
        f"{summary['test_examples']} test",
        f"- sha256 of the rendered examples: `{summary['data']['sha256']}`",
        "",
        "## Results",
        "",
        "| | value |",
        "| --- | --- |",
        f"| validation loss at step 0 | {_fmt(summary['initial_val_loss'])} |",
        f"| final training loss | {_fmt(summary['final_train_loss'])} |",
        f"| final validation loss | {_fmt(summary['final_val_loss'])} |",
        f"| best validation loss | {_fmt(summary['best_val_loss'])} |",
        f"| selected step (`{summary['select']}`) | {summary['selected_step']} of {summary['total_steps']} |",
        f"| test loss (selected weights) | {_fmt(summary['test_loss'])} |",
        f"| training time | {summary['train_seconds']:.0f} s on {summary['device']} |",
        f"| throughput | {summary['tokens_per_second']:.0f} tokens/s |",
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps(hp, indent=2),
        "```",
        "",
        f"Libraries: {', '.join(f'{k} {v}' for k, v in summary['versions'].items())}. Cache key `{summary['cache_key']}`.",
        "",
    ]
    return "\n".join(lines)
