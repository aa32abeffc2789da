"""Training one candidate on several processes (train.distributed): the launch command, the settings that pass
through to accelerate, and (slow) a LoRA trained by `bakeoff run` on 2 gloo CPU processes whose curve matches
a one-process run with the same global batch."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bakeoff.recipe.load import load_recipe
from bakeoff.training.config import DistributedSettings, TrainSettings
from bakeoff.training.distributed import launch_command
from bakeoff.training.quantization import TrainingError
from bakeoff.training.request import hyperparameters
from bakeoff.training.sft import sft_config

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "data" / "contract-train.jsonl"
# Full batches only (32 examples, 4 per step): a split batch never needs padding, so both runs see the same
# examples in the same steps. No dropout: its masks are drawn per process and would differ between the runs.
TRAIN_BLOCK = {
    "method": "lora",
    "data": {"kind": "instruct", "path": str(TRAIN), "limit": 40, "validation": 0.2, "test": 0.0},
    "max_steps": 6,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "eval_every": 3,
    "max_length": 96,
    "select": "last",
    "lora": {"r": 8, "dropout": 0.0, "layers": 4, "target_modules": ["q_proj", "v_proj"]},
}
# Stated tolerance. The first step's loss (the same batch, the same initial weights) must agree to float
# precision: a wrong global batch, token average or data order moves it by 1e-2 or more. Later losses drift a
# little (measured: at most 8e-3 by step 6, 0.3%; deterministic, rerun for rerun): every logged loss within 1%.
FIRST_STEP = 1e-5
RELATIVE = 1e-2


def write_recipe(tmp_path: Path, train: dict, accelerate_config: Path | None = None) -> Path:
    block = dict(train)
    if accelerate_config is not None:
        block["distributed"] = {**block.get("distributed", {}), "config": str(accelerate_config)}
    recipe = {
        "name": "dist",
        "base_model": "embedded:smollm2-135m-instruct",
        "task": "qa",
        "eval": {"questions": str(ROOT / "data" / "contract-qa.jsonl"), "limit": 2, "metrics": ["rougeL"]},
        "candidates": [
            {"name": "lora", "agent": "finetuned", "train": block, "generation": {"max_new_tokens": 16}}
        ],
    }
    path = tmp_path / "dist.yaml"
    path.write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    return path


def test_launch_commands_on_cpu_and_gpu(tmp_path):
    job = tmp_path / "job.pkl"
    cpu = launch_command(DistributedSettings(processes=2), job, cuda=False, port=29611)
    assert cpu[:3] == [sys.executable, "-m", "torch.distributed.run"]
    assert cpu[cpu.index("--nproc_per_node") + 1] == "2" and cpu[cpu.index("--master_port") + 1] == "29611"
    assert cpu[-3:] == ["-m", "bakeoff.training.distributed", str(job)]

    gpu = launch_command(DistributedSettings(processes=4), job, cuda=True, port=29612)
    assert gpu[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert "--multi_gpu" in gpu and gpu[gpu.index("--num_processes") + 1] == "4"
    assert gpu[gpu.index("--main_process_port") + 1] == "29612" and gpu[-2:] == [
        "bakeoff.training.distributed",
        str(job),
    ]


def test_accelerate_config_passes_through_from_the_recipe(tmp_path):
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\nfsdp_config:\n  fsdp_state_dict_type: FULL_STATE_DICT\n")
    recipe = load_recipe(write_recipe(tmp_path, {**TRAIN_BLOCK, "distributed": {"processes": 2}}, config))
    settings = recipe.candidates[0].train
    assert settings.distributed.config == config.resolve()
    command = launch_command(settings.distributed, tmp_path / "job.pkl", cuda=True, port=29613)
    assert command[command.index("--config_file") + 1] == str(config.resolve())
    assert "--multi_gpu" not in command  # the config file says what kind of parallelism
    with pytest.raises(TrainingError, match="needs CUDA GPUs"):
        launch_command(settings.distributed, tmp_path / "job.pkl", cuda=False, port=29613)


def test_distributed_keeps_the_cache_key_and_splits_the_global_batch(tmp_path):
    one = TrainSettings.model_validate(TRAIN_BLOCK)
    two = TrainSettings.model_validate(
        {**TRAIN_BLOCK, "distributed": {"processes": 2}, "report_to": ["tensorboard"]}
    )
    assert hyperparameters(one) == hyperparameters(two)
    args = sft_config(
        two,
        tmp_path,
        cuda=False,
        half=False,
        validation=True,
        instruct=True,
        gradient_checkpointing=False,
        processes=3,
    )
    assert args.per_device_train_batch_size == 4 and args.accelerator_config.split_batches is True
    assert args.per_device_eval_batch_size == 18 and args.average_tokens_across_devices is True
    assert args.report_to == []  # tensorboard is the session's own callback, writing into the cache folder
    single = sft_config(
        one, tmp_path, cuda=False, half=False, validation=True, instruct=True, gradient_checkpointing=False
    )
    assert single.accelerator_config.split_batches is False and single.report_to == []


def test_batch_size_must_split_evenly():
    with pytest.raises(ValueError, match="batch_size: 4 is split across distributed.processes \\(3\\)"):
        TrainSettings.model_validate({**TRAIN_BLOCK, "distributed": {"processes": 3}})


def metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_two_gloo_processes_match_one_and_the_adapter_answers(tmp_path, bakeoff_cmd):
    runs = tmp_path / "runs"
    curves, summaries = {}, {}
    for processes in (1, 2):
        train = dict(TRAIN_BLOCK)
        if processes > 1:
            train["distributed"] = {"processes": processes}
        home = (
            tmp_path / f"home{processes}"
        )  # separate caches: the key is the same, so one would reuse the other
        env = {**os.environ, "BAKEOFF_HOME": str(home), "OMP_NUM_THREADS": "1"}
        (tmp_path / f"p{processes}").mkdir()
        recipe = write_recipe(tmp_path / f"p{processes}", train)
        proc = subprocess.run(
            [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs / str(processes))],
            capture_output=True,
            text=True,
            timeout=1500,
            env=env,
        )
        assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
        [run_dir] = list((runs / str(processes) / "dist").iterdir())
        folder = run_dir / "training" / "lora"
        curves[processes] = metrics(folder)
        summaries[processes] = json.loads((folder / "summary.json").read_text())
        answers = [json.loads(line) for line in (run_dir / "answers.jsonl").read_text().splitlines()]
        assert len(answers) == 2 and all(a["answer"].strip() and not a.get("error") for a in answers)
        assert (folder / "adapter" / "adapter_model.safetensors").is_file()
        [cached] = [p for p in (home / "training").iterdir() if p.is_dir()]
        assert (cached / "summary.json").is_file() and not (cached / "distributed-job.pkl").exists()
        if processes > 1:
            assert "training on 2 processes: -m torch.distributed.run" in proc.stdout
            assert "2 processes, 2 examples of each batch per process" in proc.stdout

    assert summaries[1]["cache_key"] == summaries[2]["cache_key"]
    assert (summaries[1]["processes"], summaries[2]["processes"]) == (1, 2)
    one, two = curves[1], curves[2]
    assert [r["step"] for r in one] == [r["step"] for r in two]
    assert [r["learning_rate"] for r in one] == pytest.approx([r["learning_rate"] for r in two])
    assert abs(one[1]["train_loss"] - two[1]["train_loss"]) < FIRST_STEP and one[1]["step"] == 1
    for key in ("train_loss", "val_loss"):
        a = [r[key] for r in one if r[key] is not None]
        b = [r[key] for r in two if r[key] is not None]
        assert len(a) == len(b) >= 3
        assert max(abs(x - y) / x for x, y in zip(a, b, strict=True)) < RELATIVE, (key, a, b)
    assert one[-1]["val_loss"] < one[0]["val_loss"]  # and it learned
    assert summaries[2]["tokens_per_epoch"] == summaries[1]["tokens_per_epoch"]
