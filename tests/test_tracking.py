"""Experiment tracking: `train.report_to` reaches the trainer (TensorBoard event files that TensorBoard's own
reader loads), and `bakeoff mlflow RUN` mirrors a finished run to a real MLflow server on 127.0.0.1 (sqlite
backend in a temporary folder), read back through the MLflow client."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bakeoff.run.store import read_run
from bakeoff.run.tracking import flatten, mlflow_name
from bakeoff.training.config import TrainSettings
from bakeoff.training.quantization import TrainingError
from bakeoff.training.sft import check_trackers

ROOT = Path(__file__).resolve().parent.parent
TRAIN = {
    "method": "lora",
    "data": {
        "kind": "instruct",
        "path": str(ROOT / "data" / "contract-train.jsonl"),
        "limit": 30,
        "validation": 0.2,
    },
    "max_steps": 4,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "eval_every": 2,
    "max_length": 96,
    "lora": {"r": 4, "layers": 2, "target_modules": ["q_proj", "v_proj"]},
    "report_to": ["tensorboard"],
}


def test_a_missing_tracker_names_its_extra():
    assert not any(Path(p, "wandb").exists() for p in sys.path)  # this environment has no wandb
    settings = TrainSettings.model_validate({**TRAIN, "report_to": ["tensorboard", "wandb"]})
    with pytest.raises(
        TrainingError, match=r"lora: train.report_to: wandb needs the `wandb` package.*bakeoff\[wandb\]"
    ):
        check_trackers(settings, "lora")
    check_trackers(
        TrainSettings.model_validate(TRAIN), "lora"
    )  # tensorboard is installed (bakeoff[tensorboard])
    with pytest.raises(ValueError, match="report_to"):
        TrainSettings.model_validate({**TRAIN, "report_to": ["neptune"]})


def test_flattened_recipe_keys_and_mlflow_names():
    flat = flatten(
        {"eval": {"metrics": ["rougeL", "bleu"]}, "candidates": [{"name": "lora", "train": {"r": 8}}]}
    )
    assert flat == {"eval.metrics": '["rougeL", "bleu"]', "candidates.lora.train.r": "8"}
    assert (
        mlflow_name("hit_rate@4") == "hit_rate_4"
        and mlflow_name("ragas/faithfulness.x") == "ragas/faithfulness.x"
    )


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """A real run: a tiny LoRA trained with report_to: [tensorboard], and a zero-shot candidate, 4 questions."""
    tmp = tmp_path_factory.mktemp("tracked")
    recipe = {
        "name": "tracked",
        "base_model": "embedded:smollm2-135m-instruct",
        "task": "qa",
        "eval": {
            "questions": str(ROOT / "data" / "contract-qa.jsonl"),
            "limit": 4,
            "metrics": ["rougeL", "token_f1"],
        },
        "candidates": [
            {"name": "zero-shot", "agent": "fewshot", "generation": {"max_new_tokens": 12}},
            {"name": "lora", "agent": "finetuned", "train": TRAIN, "generation": {"max_new_tokens": 12}},
        ],
    }
    path = tmp / "tracked.yaml"
    path.write_text(json.dumps(recipe, indent=2))
    proc = subprocess.run(
        [sys.executable, "-m", "bakeoff.cli.app", "run", str(path), "--runs-dir", str(tmp / "runs")],
        capture_output=True,
        text=True,
        timeout=1500,
        env={**os.environ, "BAKEOFF_HOME": str(tmp / "home")},
    )
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    [run_dir] = list((tmp / "runs" / "tracked").iterdir())
    return run_dir


@pytest.mark.slow
def test_tensorboard_events_load_in_tensorboards_reader(finished_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = finished_run / "training" / "lora"
    assert list((folder / "tensorboard").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"train/loss", "eval/loss", "train/learning_rate"} <= set(tags), tags
    curve = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    train = {r["step"]: r["train_loss"] for r in curve if r["train_loss"] is not None}
    logged = {e.step: e.value for e in events.Scalars("train/loss")}
    assert logged.keys() == train.keys() and all(abs(logged[s] - train[s]) < 1e-4 for s in train)
    val = {r["step"]: r["val_loss"] for r in curve if r["val_loss"] is not None}
    assert {e.step for e in events.Scalars("eval/loss")} == set(val)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` on 127.0.0.1 with a sqlite backend and a local artifact store."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    log = (folder / "server.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{folder}/mlflow.db",
            "--artifacts-destination",
            str(folder / "artifacts"),
        ],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("mlflow server did not start: " + (folder / "server.log").read_text()[-2000:])
            time.sleep(1)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.mark.slow
def test_mlflow_mirror_reads_back_params_metrics_curves_artifacts(finished_run, mlflow_server, tmp_path):
    from mlflow.tracking import MlflowClient

    cmd = [
        sys.executable,
        "-m",
        "bakeoff.cli.app",
        "mlflow",
        str(finished_run),
        "--tracking-uri",
        mlflow_server,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "with 2 candidate run(s)" in proc.stdout

    info = read_run(finished_run)
    scores = info.scores_document
    client = MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("bakeoff/tracked")
    runs = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = {r.data.tags["bakeoff.candidate"]: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == {"zero-shot", "lora"}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())
    assert parent.info.run_name == info.run_id and parent.info.status == "FINISHED"
    assert parent.data.tags["bakeoff.run_id"] == info.run_id

    # the recipe and the hyper-parameters as params
    params = parent.data.params
    assert params["base_model"] == "embedded:smollm2-135m-instruct" and params["eval.limit"] == "4"
    assert params["candidates.lora.train.learning_rate"] == "0.001"
    assert (
        params["candidates.lora.train.lora.r"] == "4"
        and params["candidates.lora.train.report_to"] == '["tensorboard"]'
    )
    assert children["lora"].data.params["train.batch_size"] == "4"

    # every candidate's means with their interval bounds
    for name, child in children.items():
        for metric in ("rougeL", "token_f1"):
            summary = scores.candidates[name].metrics[metric]
            low, high = summary.interval()
            got = child.data.metrics
            assert got[metric] == pytest.approx(summary.mean)
            assert got[f"{metric}.ci_low"] == pytest.approx(low) and got[
                f"{metric}.ci_high"
            ] == pytest.approx(high)
            assert got[f"{metric}.ci_low"] <= got[metric] <= got[f"{metric}.ci_high"]
            assert got[f"{metric}.n"] == 4

    # the loss curves as step metrics
    curve = [
        json.loads(line)
        for line in (finished_run / "training" / "lora" / "metrics.jsonl").read_text().splitlines()
    ]
    lora_id = children["lora"].info.run_id
    for key in ("train_loss", "val_loss"):
        expected = [(r["step"], r[key]) for r in curve if r[key] is not None]
        history = sorted((m.step, m.value) for m in client.get_metric_history(lora_id, key))
        assert [s for s, _ in history] == [s for s, _ in expected] and len(history) >= 2
        assert all(v == pytest.approx(e) for (_, v), (_, e) in zip(history, expected, strict=True))
    assert not client.get_metric_history(children["zero-shot"].info.run_id, "train_loss")

    # scores.json and report.html as artifacts
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"scores.json", "report.html", "recipe.yaml", "manifest.json"} <= names
    local = Path(client.download_artifacts(parent.info.run_id, "scores.json", str(tmp_path)))
    assert json.loads(local.read_text()) == json.loads((finished_run / "scores.json").read_text())
    report = Path(client.download_artifacts(parent.info.run_id, "report.html", str(tmp_path)))
    assert report.read_text().lstrip().lower().startswith("<!doctype html")
    assert {a.path for a in client.list_artifacts(lora_id, "training")} == {"training/summary.json"}

    # mirroring the same run again is refused; --replace mirrors it afresh
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 1 and "already mirrored" in again.stderr and "--replace" in again.stderr
    replaced = subprocess.run([*cmd, "--replace"], capture_output=True, text=True, timeout=600)
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    live = client.search_runs([experiment.experiment_id])
    assert len(live) == 3 and parent.info.run_id not in {r.info.run_id for r in live}
