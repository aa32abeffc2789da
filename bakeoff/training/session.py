"""One call of the trainer on one cache folder, fresh or resumed: set up, train (turning an out-of-memory
error into advice), choose the weights ``select`` asks for, and write the artifacts with ``summary.json`` last.

Training on a CPU runs in float32 without gradient checkpointing, on the cores other processes leave free.
Launched as one of several processes (:mod:`bakeoff.training.distributed`), every process trains and
evaluates, and only rank 0 writes files (:func:`~bakeoff.training.ranks.is_main_process`).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bakeoff.io import atomic_path, dumps_jsonl, read_jsonl, write_json_atomic
from bakeoff.training.cache import library_versions
from bakeoff.training.config import parse_select
from bakeoff.training.model_card import fmt_loss, model_card
from bakeoff.training.peft_compat import peft_wrapping
from bakeoff.training.quantization import TrainingError
from bakeoff.training.ranks import barrier, is_main_process, world_size
from bakeoff.training.request import TrainRequest, hyperparameters, training_device

__all__ = ["TrainingSession", "last_checkpoint"]


def last_checkpoint(root: Path, *, prune: bool = True) -> tuple[Path, int] | None:
    """The newest complete checkpoint (``trainer_state.json`` is written last); incomplete ones are removed
    (when ``prune``: by the one process that writes)."""
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
        if prune:
            shutil.rmtree(path, ignore_errors=True)
    return None


@dataclass
class _Plan:
    """The step counts, derived once the prepared (maybe packed) dataset's size is known."""

    lengths: list[int]  # tokens per training sequence
    per_epoch: int
    total: int
    eval_every: int
    save_every: int


class TrainingSession:
    """One call of the trainer on one cache folder (fresh or resumed); :meth:`run` returns the summary."""

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
        self.device = training_device()
        self.select, self.select_step = parse_select(self.s.select)
        self.metrics_path = folder / "metrics.jsonl"
        self.snapshots = folder / "snapshots"
        self.checkpoints = folder / "checkpoints"
        self.tensorboard = folder / "tensorboard"
        self.main = is_main_process()
        # launched by bakeoff.training.distributed (the run's own process hands such requests to the launcher):
        # weights are saved through the trainer, which gathers FSDP/DeepSpeed shards, even with one process
        self.launched = self.s.distributed is not None
        self.trainer = None  # set once built (snapshots of several processes are saved through it)

    # The run folder shows the curves live (the console reads them while training runs).
    def _write_metrics(self, rows: list[dict[str, Any]]) -> None:
        if not self.main:
            return
        text = dumps_jsonl(rows)
        self.metrics_path.write_text(text, encoding="utf-8")
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            (self.out_dir / "metrics.jsonl").write_text(text, encoding="utf-8")

    def run(self) -> dict[str, Any]:
        from datasets.utils.logging import disable_progress_bar

        from bakeoff.training.callbacks import FollowFreeCores, Recorder

        disable_progress_bar()
        why_threads = self._set_threads()
        resume, rows = self._resume_state()
        trainer, checkpointing = self._build_trainer()
        plan = self._plan(trainer)
        self._describe(trainer, plan, checkpointing, why_threads)
        recorder = Recorder(self, rows, plan.total, plan.eval_every)
        trainer.add_callback(recorder)
        if self.device != "cuda":
            trainer.add_callback(FollowFreeCores())
        for callback in self.req.callbacks:
            trainer.add_callback(callback)
        _reset_gpu_peak(self.device)
        if "tensorboard" in self.s.report_to and self.main:
            trainer.add_callback(self._tensorboard())
        started = time.perf_counter()
        out_of_memory = self._train(trainer, recorder, resume, plan)
        if out_of_memory is not None:  # handled here, not in `except`: no traceback pins the activations
            raise self._out_of_memory(trainer, recorder, plan, checkpointing, out_of_memory)
        train_seconds = time.perf_counter() - started
        recorder.flush()
        return self._finish(trainer, recorder, plan, train_seconds, resume)

    # -- set-up --------------------------------------------------------------------------------------------
    def _set_threads(self) -> str:
        """Torch threads for CPU training: ``OMP_NUM_THREADS``, else one per core that other processes leave
        free (:mod:`bakeoff.threads`; re-decided during training by ``FollowFreeCores``). A neighbour busy on
        one of 2 cores made a step with 2 threads ~9x slower than with 1. Returns why ("" on a GPU)."""
        if self.device == "cuda":
            return ""
        import torch

        from bakeoff.threads import cpu_threads

        threads, why = cpu_threads()
        torch.set_num_threads(threads)
        return why

    def _resume_state(self) -> tuple[tuple[Path, int] | None, list[dict[str, Any]]]:
        """The checkpoint to resume from and the curve rows up to it (later rows and snapshots are dropped)."""
        resume = last_checkpoint(self.checkpoints, prune=self.main)
        if resume is None:
            rows: list[dict[str, Any]] = []
            if self.main:
                shutil.rmtree(self.snapshots, ignore_errors=True)
                shutil.rmtree(self.tensorboard, ignore_errors=True)
        else:
            rows = [r for r in read_jsonl(self.metrics_path) if r["step"] <= resume[1]]
            for snap in self.snapshots.glob("step-*"):
                if int(snap.name.partition("-")[2]) > resume[1] and self.main:
                    shutil.rmtree(snap)
        self._write_metrics(rows)
        barrier()  # the other processes start once rank 0 has tidied the folder
        return resume, rows

    def _tensorboard(self):
        """transformers' TensorBoard callback writing into the cache folder (exported with the run)."""
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        return TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(self.tensorboard)))

    def save_snapshot(self, model, path: Path) -> None:
        """Save the weights being trained to ``path``: directly in one process; through the trainer (which
        gathers sharded FSDP/DeepSpeed weights and writes on rank 0) when several train together."""
        if self.launched and self.trainer is not None:
            self.trainer.save_model(str(path))
        else:
            model.save_pretrained(path, safe_serialization=True)

    def _build_trainer(self):
        """The SFT trainer over the base model (and its LoRA), and whether gradient checkpointing is on."""
        import torch
        from datasets import Dataset
        from transformers import set_seed
        from transformers.trainer_callback import PrinterCallback
        from trl import SFTTrainer

        from bakeoff.training.loading import load_base, load_tokenizer, lora_config
        from bakeoff.training.sft import sft_config, sft_trainer_class

        req, s, cuda = self.req, self.s, self.device == "cuda"
        tokenizer = load_tokenizer(req.model_dir, req.chat_template)
        model = load_base(req.model_dir, self.method, self.device, training=True)
        checkpointing = s.gradient_checkpointing if s.gradient_checkpointing is not None else cuda
        if self.method == "qlora":
            from peft import prepare_model_for_kbit_training

            model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
        val_ds = Dataset.from_list(req.data.validation) if req.data.validation else None
        self.half = cuda and torch.cuda.is_bf16_supported()
        args = sft_config(
            s,
            self.checkpoints,
            cuda=cuda,
            half=self.half,
            validation=val_ds is not None,
            instruct=req.data.kind == "instruct",
            gradient_checkpointing=checkpointing,
            processes=world_size(),
        )
        # The adapter's initial weights are drawn from the global generator when the trainer wraps the model:
        # seeded here, they depend on `seed` alone, not on what this process ran before (a launched process and
        # the run's own process start from the same adapter).
        set_seed(s.seed)
        with peft_wrapping():
            trainer = sft_trainer_class(SFTTrainer)(
                model=model,
                args=args,
                train_dataset=Dataset.from_list(req.data.train),
                eval_dataset=val_ds,
                processing_class=tokenizer,
                peft_config=None if self.method == "full" else lora_config(s, model),
            )
        trainer.remove_callback(PrinterCallback)  # bakeoff draws its own progress
        self.trainer = trainer
        return trainer, checkpointing

    def _plan(self, trainer) -> _Plan:
        """The real step counts, set on the trainer's arguments."""
        s = self.s
        lengths = [len(ids) for ids in trainer.train_dataset["input_ids"]]
        batches = math.ceil(len(lengths) / s.batch_size)
        per_epoch = max(1, math.ceil(batches / s.grad_accum))
        total = s.max_steps or max(1, math.ceil(s.epochs * per_epoch))
        if self.select == "step" and self.select_step is not None and self.select_step > total:
            raise TrainingError(
                f"{self.req.candidate}: select: step:{self.select_step} but training runs {total} steps; pick a "
                f"step ≤ {total} or raise epochs/max_steps"
            )
        eval_every = s.eval_every or max(1, round(total / 10))
        save_every = s.save_every or eval_every
        args = trainer.args
        args.max_steps = total
        args.eval_steps = eval_every
        args.save_steps = save_every
        args.logging_steps = max(1, min(eval_every, math.ceil(total / 50)))
        args.warmup_steps = int(s.warmup_ratio * total)
        return _Plan(lengths, per_epoch, total, eval_every, save_every)

    def _describe(self, trainer, plan: _Plan, checkpointing: bool, why_threads: str) -> None:
        """Print the derived numbers a user needs: parameters, data, steps, device."""
        import torch

        s, data, lengths = self.s, self.req.data, plan.lengths
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        params = sum(p.numel() for p in trainer.model.parameters())
        tokens_epoch = sum(lengths)
        what = "sequences" if s.packing else "examples"
        shape = (
            "every weight"
            if self.method == "full"
            else f"r={s.lora.r} α={s.lora.alpha or 2 * s.lora.r:g} on {s.lora.target_modules}"
            + (f" (last {s.lora.layers} layers)" if s.lora.layers else "")
        )
        precision = (
            "4-bit NF4 base, bf16 compute" if self.method == "qlora" else ("bf16" if self.half else "fp32")
        )
        threads = f", {torch.get_num_threads()} thread(s) ({why_threads})" if self.device != "cuda" else ""
        if world_size() > 1:
            share = s.batch_size // world_size()
            threads += f"; {world_size()} processes, {share} examples of each batch per process"
        self.console.print(
            f"[bold]train {self.req.candidate}[/] · {self.method} {shape} · {trainable / 1e6:.2f}M trainable of "
            f"{params / 1e6:.0f}M parameters\n"
            f"  data: {data.kind} from {data.source}: {len(data.train)} train / {len(data.validation)} val / "
            f"{len(data.test)} test examples; {len(lengths)} {what}, {tokens_epoch:,} tokens per epoch "
            f"(mean {tokens_epoch / max(1, len(lengths)):.0f}, max {max(lengths, default=0)})\n"
            f"  steps: batch {s.batch_size} × accumulation {s.grad_accum} = {s.batch_size * s.grad_accum} per "
            f"step; {plan.per_epoch} steps per epoch; {plan.total} steps (≈{plan.total / plan.per_epoch:.2f} "
            f"epochs); eval every {plan.eval_every}, checkpoint every {plan.save_every}\n"
            f"  device: {self.device}, {precision}{threads}, gradient checkpointing "
            f"{'on' if checkpointing else 'off'}"
        )

    # -- training ------------------------------------------------------------------------------------------
    def _train(self, trainer, recorder, resume: tuple[Path, int] | None, plan: _Plan) -> str | None:
        """Train (from the checkpoint ``resume`` names); the first line of an out-of-memory error, else None."""
        import torch
        from transformers import set_seed

        from bakeoff.training.oom import out_of_memory_detail

        try:
            with recorder.progress:
                if resume is None and self.req.data.validation:
                    trainer.evaluate()  # the step-0 validation loss: the curve starts at the untrained model
                elif resume is not None:
                    self.console.print(
                        f"{self.req.candidate}: resuming from step {resume[1]} of {plan.total} ({resume[0].name} "
                        "in the cache)"
                    )
                # The sampler draws the epoch's data order from the global RNG when the epoch starts: seeding it
                # here gives a resumed run the order of an uninterrupted one (the checkpoint's RNG state, which
                # drives dropout, is restored once the finished batches are skipped).
                set_seed(self.s.seed)
                trainer.train(resume_from_checkpoint=str(resume[0]) if resume else None)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            detail = out_of_memory_detail(exc)
            if detail is None:
                raise
            return detail
        return None

    def _out_of_memory(
        self, trainer, recorder, plan: _Plan, checkpointing: bool, detail: str
    ) -> TrainingError:
        """Keep what was trained (a checkpoint at the last finished step) and say which knobs use less memory."""
        import gc

        import torch

        from bakeoff.training.oom import out_of_memory_error

        recorder.flush()
        step = trainer.state.global_step
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        kept = last_checkpoint(self.checkpoints)
        if step > (kept[1] if kept else 0):
            try:
                trainer._save_checkpoint(
                    trainer.model, trial=None
                )  # weights, optimizer, scheduler, RNG, state
            except Exception as exc:  # saving can fail for the same reason; the last checkpoint stays
                self.console.print(f"[red]{self.req.candidate}: could not save step {step}: {exc}[/]")
            kept = last_checkpoint(self.checkpoints)
        return out_of_memory_error(
            candidate=self.req.candidate,
            settings=self.s,
            method=self.method,
            device=self.device,
            step=step,
            total=plan.total,
            kept=kept,
            lengths=plan.lengths,
            checkpointing=checkpointing,
            detail=detail,
        )

    # -- the result ----------------------------------------------------------------------------------------
    def _finish(self, trainer, recorder, plan: _Plan, train_seconds: float, resume) -> dict[str, Any]:
        """Choose the weights, measure the test loss, write the artifacts and the summary (last)."""
        if self.select == "best_val" and recorder.best_step is not None:
            selected = recorder.best_step
        elif self.select == "step" and self.select_step is not None:
            selected = self.select_step
        else:
            selected = plan.total
        self._save_weights(trainer, selected, plan.total)
        barrier()
        test_loss = None
        if self.req.data.test:
            from datasets import Dataset

            out = trainer.evaluate(Dataset.from_list(self.req.data.test), metric_key_prefix="test")
            test_loss = out.get("test_loss")
        summary = self._summary(recorder, plan, selected, test_loss, train_seconds, resume)
        barrier()  # every process is done with the checkpoints and snapshots
        if not self.main:
            return summary
        (self.folder / "README.md").write_text(model_card(summary), encoding="utf-8")
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        shutil.rmtree(self.snapshots, ignore_errors=True)
        write_json_atomic(self.folder / "summary.json", summary)  # last: the folder is complete
        best = f", best val {summary['best_val_loss']:.4f}" if summary["best_val_loss"] is not None else ""
        self.console.print(
            f"[green]✓[/] {self.req.candidate}: trained {plan.total} steps in {train_seconds:.0f}s "
            f"({summary['tokens_per_second']:.0f} tokens/s); val loss {fmt_loss(summary['initial_val_loss'])} → "
            f"{fmt_loss(summary['final_val_loss'])}{best}; selected step {selected} ({self.s.select})"
        )
        return summary

    def _save_weights(self, trainer, selected: int, total: int) -> None:
        """Write the selected step's weights (the last step's: the model as it is) and the tokenizer."""
        from bakeoff.training.loading import load_weights

        if self.launched:
            return self._save_weights_together(trainer, selected, total)
        with atomic_path(self.folder / ("model" if self.method == "full" else "adapter")) as tmp:
            if selected == total:
                trainer.model.save_pretrained(tmp, safe_serialization=True)
            else:
                shutil.copytree(self.snapshots / f"step-{selected}", tmp)
                load_weights(trainer.model, tmp, self.method)
            trainer.processing_class.save_pretrained(tmp)

    def _save_weights_together(self, trainer, selected: int, total: int) -> None:
        """:meth:`_save_weights` with several processes: each one takes part in saving (sharded weights are
        gathered) and loads the selected snapshot; rank 0 writes, then moves the folder into place."""
        from bakeoff.training.loading import load_weights

        final = self.folder / ("model" if self.method == "full" else "adapter")
        staging = final.with_name(f".{final.name}.saving")
        if self.main:
            shutil.rmtree(staging, ignore_errors=True)
        barrier()
        if selected == total:
            trainer.save_model(str(staging))
        else:
            snapshot = self.snapshots / f"step-{selected}"
            load_weights(trainer.model, snapshot, self.method)
            if self.main:
                shutil.copytree(snapshot, staging)
        barrier()
        if self.main:
            trainer.processing_class.save_pretrained(staging)
            (staging / "training_args.bin").unlink(missing_ok=True)
            shutil.rmtree(final, ignore_errors=True)
            staging.replace(final)

    def _summary(self, recorder, plan: _Plan, selected: int, test_loss, train_seconds: float, resume):
        req, s, rows = self.req, self.s, recorder.rows
        train_losses = [r["train_loss"] for r in rows if r["train_loss"] is not None]
        val_rows = [r for r in rows if r["val_loss"] is not None]
        return {
            "candidate": req.candidate,
            "method": self.method,
            "requested_method": s.method,
            "select": s.select,
            "selected_step": selected,
            "total_steps": plan.total,
            "train_examples": len(req.data.train),
            "val_examples": len(req.data.validation),
            "test_examples": len(req.data.test),
            "hyperparameters": hyperparameters(s),
            "initial_val_loss": val_rows[0]["val_loss"] if val_rows and val_rows[0]["step"] == 0 else None,
            "final_train_loss": train_losses[-1] if train_losses else None,
            "final_val_loss": val_rows[-1]["val_loss"] if val_rows else None,
            "best_val_loss": min((r["val_loss"] for r in val_rows), default=None),
            "selected_val_loss": next((r["val_loss"] for r in val_rows if r["step"] == selected), None),
            "test_loss": test_loss,
            "cache_key": self.key,
            "cache_hit": False,
            "resumed_from_step": resume[1] if resume else None,
            "train_seconds": round(train_seconds, 2),
            "tokens_per_second": round(recorder.tokens / train_seconds, 1) if train_seconds > 0 else 0.0,
            "tokens_per_epoch": sum(plan.lengths),
            "base_model": req.base_model,
            "data": {"kind": req.data.kind, "source": req.data.source, "sha256": req.data.digest},
            "device": self.device,
            "peak_gpu_memory_gb": _gpu_peak_gb(self.device),
            "processes": world_size(),
            "versions": library_versions(),
        }


def _reset_gpu_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _gpu_peak_gb(device: str) -> float | None:
    """Peak GPU memory of the training, GiB (the verdict's cost; ``None`` off a GPU)."""
    if device != "cuda":
        return None
    import torch

    return round(sum(torch.cuda.max_memory_allocated(i) for i in range(torch.cuda.device_count())) / 2**30, 2)
