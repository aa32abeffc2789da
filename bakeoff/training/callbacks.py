"""Trainer callbacks: the recorder (loss curves on disk, the progress bar, the snapshots ``select`` needs) and
following the CPU cores other processes leave free."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import TrainerCallback

from bakeoff.io import append_jsonl
from bakeoff.training.model_card import fmt_loss

if TYPE_CHECKING:
    from bakeoff.training.session import TrainingSession

__all__ = ["METRIC_KEYS", "FollowFreeCores", "Recorder"]

METRIC_KEYS = ("step", "epoch", "train_loss", "val_loss", "learning_rate")


class FollowFreeCores(TrainerCallback):
    """Before each CPU step, follow the cores other processes leave free (they start and stop mid-run)."""

    def on_step_begin(self, args, state, control, **kwargs):
        from bakeoff.threads import adjust_torch_threads

        adjust_torch_threads()


class Recorder(TrainerCallback):
    """Writes the curves, draws the progress bar, keeps the weights ``select`` needs."""

    def __init__(
        self, session: TrainingSession, rows: list[dict[str, Any]], total: int, eval_every: int
    ) -> None:
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
        return f"loss {fmt_loss(train)} · val {fmt_loss(val)}"

    def _evaluates(self, step: int) -> bool:
        s = self.session
        return (
            step % self.eval_every == 0
            or step == self.total
            or (s.select == "step" and step == s.select_step)
        )

    def _append(self, row: dict[str, Any]) -> None:
        self.rows.append({k: row.get(k) for k in METRIC_KEYS})
        for path in self._metric_files() if self.session.main else ():
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
        if keep:  # the same decision in every process (the validation loss is gathered)
            s.save_snapshot(model, s.snapshots / f"step-{step}")
            if s.select == "best_val":
                self.best_step, self.best_val = step, val

    def on_save(self, args, state, control, **kwargs):
        # The checkpoint of this step is on disk: snapshots that can no longer be selected may go. (Done here,
        # not at evaluation, so a run killed between the two still finds its best snapshot when it resumes.)
        s = self.session
        if not s.main:
            return
        wanted = {self.best_step, s.select_step}
        for snap in s.snapshots.glob("step-*"):
            if int(snap.name.partition("-")[2]) not in wanted:
                shutil.rmtree(snap, ignore_errors=True)
