"""Out of memory during training: the work done is kept as a checkpoint, the message names the knobs, and
turning on gradient checkpointing resumes from that checkpoint.

A GPU is not needed: a trainer callback raises ``torch.OutOfMemoryError`` (what CUDA raises) at step 3, on
the same code path a real out-of-memory error takes inside ``trainer.train()``.
"""

import io
import json
from pathlib import Path

import pytest
import torch
from rich.console import Console
from transformers import TrainerCallback

from bakeoff.agents.finetuned import local_model_dir
from bakeoff.models.refs import EmbeddedRef
from bakeoff.training.config import TrainSettings
from bakeoff.training.data import build_training_data
from bakeoff.training.quantization import TrainingError
from bakeoff.training.trainer import TrainRequest, train_candidate, training_key

ROOT = Path(__file__).resolve().parent.parent
TRAIN = {
    "data": {
        "kind": "instruct",
        "path": str(ROOT / "data" / "contract-train.jsonl"),
        "limit": 12,
        "validation": 0.25,
        "test": 0.0,
    },
    "max_steps": 4,
    "learning_rate": 1e-3,
    "batch_size": 2,
    "eval_every": 2,
    "max_length": 64,
    "seed": 11,
}


class OutOfMemoryAt(TrainerCallback):
    """Raises what CUDA raises when an allocation fails, at the end of one optimizer step."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise torch.OutOfMemoryError(
                "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 23.65 GiB total capacity)"
            )


def request(callbacks=(), **changes) -> TrainRequest:
    settings = TrainSettings.model_validate({**TRAIN, **changes})
    ref = EmbeddedRef("smollm2-135m-instruct")
    return TrainRequest(
        "lora",
        str(ref),
        local_model_dir(ref),
        settings,
        build_training_data(settings.data, system="Answer briefly.", seed=settings.seed),
        callbacks=list(callbacks),
    )


@pytest.mark.reliability
def test_out_of_memory_keeps_a_checkpoint_and_names_the_knobs(tmp_path, monkeypatch):
    from bakeoff.training.cache import cache_dir

    # One thread: on a busy 2-core machine two OpenMP threads were measured 10x slower for this tiny model.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    req = request([OutOfMemoryAt(3)])
    key = training_key(req)[0]
    assert training_key(request(gradient_checkpointing=True))[0] == key  # same weights, same cache folder
    out = io.StringIO()
    with pytest.raises(TrainingError) as caught:
        train_candidate(req, console=Console(file=out, width=200), note=print, out_dir=tmp_path / "run1")
    message = str(caught.value)
    checkpoint = cache_dir(key) / "checkpoints" / "checkpoint-3"
    assert "ran out of memory at step 3 of 4 (CUDA out of memory. Tried to allocate 2.00 GiB" in message
    assert f"Checkpoint kept at step 3: {checkpoint}" in message
    for knob in (
        "`gradient_checkpointing: true`",
        "`batch_size: 1` with `grad_accum: 2` (same effective batch of 2)",
        "`max_length: 32`",
        "`method: qlora`",
    ):
        assert knob in message, knob
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["global_step"] == 3
    assert (checkpoint / "adapter_model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    assert not (cache_dir(key) / "summary.json").exists()  # not complete: nothing pretends to be trained

    # The knob that keeps the checkpoint: the same candidate with gradient checkpointing resumes at step 3.
    out2 = io.StringIO()
    trained = train_candidate(
        request(gradient_checkpointing=True),
        console=Console(file=out2, width=200),
        note=print,
        out_dir=tmp_path / "run2",
    )
    assert "resuming from step 3 of 4" in out2.getvalue() and "gradient checkpointing on" in out2.getvalue()
    assert trained.summary["resumed_from_step"] == 3 and trained.summary["total_steps"] == 4
    assert (tmp_path / "run2" / "adapter" / "adapter_model.safetensors").is_file()
    rows = [json.loads(line) for line in (tmp_path / "run2" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [0, 2, 4]
