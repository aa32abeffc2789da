"""Fine-tuning end to end on the real embedded model with real peft + TRL training (a few steps)."""

import io
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from rich.console import Console

from bakeoff.agents.finetuned import FineTunedAgent, FineTunedSettings
from bakeoff.core import Query
from bakeoff.models.refs import CandidateRef, EmbeddedRef
from bakeoff.run.context import RunContext

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "data" / "contract-train.jsonl"
METRIC_KEYS = ["step", "epoch", "train_loss", "val_loss", "learning_rate"]

# Small enough for the default suite: 32 training examples, 8 steps of 4 at a high learning rate.
TINY = {
    "data": {"kind": "instruct", "path": str(TRAIN), "limit": 40, "validation": 0.2, "test": 0.0},
    "max_steps": 8,
    "learning_rate": 1e-3,
    "batch_size": 4,
    "eval_every": 4,
    "max_length": 128,
}


def context(run_dir: Path | None, *, retrain: bool = False) -> tuple[RunContext, io.StringIO]:
    out = io.StringIO()
    ctx = RunContext(
        task="qa",
        labels=[],
        base_model=EmbeddedRef("smollm2-135m-instruct"),
        recipe_dir=ROOT / "recipes",
        recipe_name="ft-test",
        console=Console(file=out, width=200),
        run_dir=run_dir,
        retrain=retrain,
    )
    return ctx, out


def agent(ctx: RunContext, train: dict, name: str = "lora") -> FineTunedAgent:
    settings = FineTunedSettings(name=name, agent="finetuned", train=train)
    built = FineTunedAgent(settings, ctx.for_candidate(name))
    ctx.agents[name] = built
    return built


def read_metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def timed_prepare(a: FineTunedAgent) -> float:
    t0 = time.perf_counter()
    a.prepare()
    return time.perf_counter() - t0


def test_cpu_training_curves_artifacts_and_a_cache_hit(tmp_path):
    ctx, out = context(tmp_path / "run1")
    trained_s = timed_prepare(agent(ctx, TINY))
    folder = tmp_path / "run1" / "training" / "lora"
    printed = out.getvalue()
    assert "32 train / 8 val / 0 test examples" in printed and "batch 4 × accumulation 1 = 4" in printed
    assert "8 steps" in printed and "gradient checkpointing off" in printed

    rows = read_metrics(folder)
    assert all(list(r) == METRIC_KEYS for r in rows)
    assert rows[0] == {
        "step": 0,
        "epoch": 0.0,
        "train_loss": None,
        "val_loss": rows[0]["val_loss"],
        "learning_rate": None,
    }
    val = [r for r in rows if r["val_loss"] is not None]
    train = [r for r in rows if r["train_loss"] is not None]
    assert [r["step"] for r in val] == [0, 4, 8]
    assert len(train) >= 4 and all(r["learning_rate"] > 0 for r in train)
    assert val[-1]["val_loss"] < val[0]["val_loss"]  # it learned something about held-out paraphrases

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["method"] == summary["requested_method"] == "lora"
    assert summary["select"] == "best_val" and summary["selected_step"] in (4, 8)
    assert summary["best_val_loss"] == min(r["val_loss"] for r in val)
    assert (
        summary["initial_val_loss"] == val[0]["val_loss"] and summary["final_val_loss"] == val[-1]["val_loss"]
    )
    assert (summary["train_examples"], summary["val_examples"]) == (32, 8)
    assert summary["cache_hit"] is False and summary["tokens_per_second"] > 0 and summary["train_seconds"] > 0
    assert summary["hyperparameters"]["learning_rate"] == 1e-3
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer.json"):
        assert (folder / "adapter" / name).is_file(), name
    assert "im_start" in (folder / "adapter" / "chat_template.jinja").read_text()
    card = (folder / "README.md").read_text()
    assert summary["cache_key"] in card and "final validation loss" in card and "sha256" in card

    # Second run, unchanged candidate: a cache hit, at least 5x faster, same artifacts in the new run folder.
    ctx2, out2 = context(tmp_path / "run2")
    hit = agent(ctx2, TINY)
    hit_s = timed_prepare(hit)
    folder2 = tmp_path / "run2" / "training" / "lora"
    summary2 = json.loads((folder2 / "summary.json").read_text())
    assert summary2["cache_hit"] is True and "cache hit" in out2.getvalue()
    assert summary2["cache_key"] == summary["cache_key"] and read_metrics(folder2) == rows
    assert trained_s >= 5 * hit_s, (trained_s, hit_s)
    assert (folder2 / "adapter" / "adapter_model.safetensors").read_bytes() == (
        folder / "adapter" / "adapter_model.safetensors"
    ).read_bytes()

    # The trained model answers, and `candidate:lora` (RAG over the fine-tune) resolves to the same model.
    gen = ctx2.generator_for(CandidateRef("lora"))
    assert gen is hit.generator() and not gen.model.training
    answers = hit.answer([Query("q1", "What is the Effective Date of the agreement?")])
    assert answers[0].error is None and answers[0].text.strip() and answers[0].completion_tokens > 0
    assert hit.describe()["training"]["cache_hit"] is True


def test_retrain_trains_again_and_merge_writes_a_plain_model(tmp_path):
    train = {**TINY, "max_steps": 2, "eval_every": 1, "seed": 3, "merge": True}
    ctx, _ = context(tmp_path / "run1")
    agent(ctx, train).prepare()
    ctx2, out2 = context(tmp_path / "run2", retrain=True)
    again = agent(ctx2, train)
    again.prepare()
    assert "--retrain: discarding cached training" in out2.getvalue()
    folder = tmp_path / "run2" / "training" / "lora"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["cache_hit"] is False and summary["total_steps"] == 2
    merged = folder / "merged"
    assert (merged / "config.json").is_file() and (merged / "model.safetensors").is_file()
    assert not (merged / "adapter_config.json").exists()  # an ordinary model, loadable without peft
    assert again.generator().model.__class__.__name__ == "LlamaForCausalLM"


def test_full_fine_tuning_with_the_alpaca_template_and_packing(tmp_path):
    train = {
        **TINY,
        "method": "full",
        "max_steps": 2,
        "eval_every": 2,
        "select": "last",
        "packing": True,
        "learning_rate": 1e-5,
        "data": {**TINY["data"], "template": "alpaca"},
    }
    ctx, out = context(tmp_path / "run")
    a = agent(ctx, train, name="full")
    a.prepare()
    folder = tmp_path / "run" / "training" / "full"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["method"] == "full" and summary["selected_step"] == 2 and "every weight" in out.getvalue()
    assert "sequences" in out.getvalue()  # packed: the derived numbers count packed sequences
    assert (folder / "model" / "model.safetensors").is_file() and not (folder / "adapter").exists()
    assert "### Instruction" in (folder / "model" / "chat_template.jinja").read_text()
    rows = read_metrics(folder)
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [0, 2]
    answers = a.answer([Query("q1", "What is the Effective Date of the agreement?")])
    assert answers[0].error is None


def test_cache_key_changes_with_the_candidate_only():
    from bakeoff.agents.finetuned import local_model_dir
    from bakeoff.training.config import TrainSettings
    from bakeoff.training.data import build_training_data
    from bakeoff.training.trainer import TrainRequest, training_key

    def key(**changes):
        settings = TrainSettings.model_validate({**TINY, **changes})
        data = build_training_data(settings.data, system="s", seed=settings.seed)
        req = TrainRequest(
            "x",
            "embedded:smollm2-135m-instruct",
            local_model_dir(EmbeddedRef("smollm2-135m-instruct")),
            settings,
            data,
        )
        return training_key(req)[0]

    same = key()
    assert key() == same and key(merge=True) == same  # merging does not change the trained weights
    assert key(learning_rate=5e-4) != same and key(seed=1) != same and key(lora={"r": 8}) != same
    data = dict(TINY["data"], limit=39)
    assert key(data=data) != same  # the data's content is part of the key


def test_cpu_loss_equals_trls_loss():
    """The CPU shortcut (project only labelled positions) computes the same loss as TRL's fused head."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from bakeoff.agents.finetuned import local_model_dir
    from bakeoff.training.config import DataSettings
    from bakeoff.training.data import build_training_data
    from bakeoff.training.sft import sft_trainer_class

    path = local_model_dir(EmbeddedRef("smollm2-135m-instruct"))
    data = build_training_data(DataSettings(kind="instruct", path=TRAIN, limit=12), system="s", seed=0)
    args = SFTConfig(
        output_dir="/tmp/unused",
        use_cpu=True,
        bf16=False,
        activation_checkpointing=False,
        report_to="none",
        per_device_eval_batch_size=4,
        max_length=64,
    )
    trainer = sft_trainer_class(SFTTrainer)(
        model=AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32),
        args=args,
        train_dataset=Dataset.from_list(data.train),
        processing_class=AutoTokenizer.from_pretrained(path),
        peft_config=LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    batch = trainer._prepare_inputs(next(iter(trainer.get_eval_dataloader(trainer.train_dataset))))
    trainer.model.eval()
    with torch.no_grad():
        ours = trainer.compute_loss(trainer.model, dict(batch))
        theirs = SFTTrainer.compute_loss(trainer, trainer.model, dict(batch))
    assert abs(float(ours) - float(theirs)) < 1e-4, (float(ours), float(theirs))


def write_recipe(tmp_path: Path, train: dict, *, limit: int = 2) -> Path:
    lines = [
        "name: ft-resume",
        "eval:",
        f"  questions: {ROOT}/data/contract-qa.jsonl",
        f"  limit: {limit}",
        "candidates:",
        "  - name: lora",
        "    agent: finetuned",
        f"    train: {json.dumps(train)}",
    ]
    path = tmp_path / "recipe.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.slow
def test_killed_training_resumes_from_its_last_checkpoint(tmp_path, bakeoff_cmd):
    from bakeoff.paths import training_cache_dir

    train = {**TINY, "max_steps": 12, "eval_every": 3, "batch_size": 2, "seed": 7}
    recipe = write_recipe(tmp_path, train)
    runs = tmp_path / "runs"
    cmd = [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs)]
    before = set(training_cache_dir().glob("*")) if training_cache_dir().exists() else set()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 900
        state = None
        while time.time() < deadline and state is None:  # kill once a checkpoint after step 3 is complete
            found = [p for p in training_cache_dir().glob("*/checkpoints/checkpoint-*/trainer_state.json")]
            state = next((p for p in found if int(p.parent.name.rpartition("-")[2]) >= 6), None)
            time.sleep(0.2)
        assert state is not None, "training never wrote a checkpoint"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    [folder] = [p for p in training_cache_dir().glob("*") if p.is_dir() and p not in before]
    assert not (folder / "summary.json").exists()
    steps = sorted(
        int(p.parent.name.rpartition("-")[2])
        for p in folder.glob("checkpoints/checkpoint-*/trainer_state.json")
    )
    resumed_at = steps[-1]
    assert resumed_at in (6, 9)

    again = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from step {resumed_at} of 12" in again.stdout
    [run_dir] = sorted((runs / "ft-resume").iterdir())[-1:]
    summary = json.loads((run_dir / "training" / "lora" / "summary.json").read_text())
    assert summary["resumed_from_step"] == resumed_at and summary["cache_hit"] is False
    rows = read_metrics(run_dir / "training" / "lora")
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})  # no step logged twice
    assert [r["step"] for r in rows if r["val_loss"] is not None] == [0, 3, 6, 9, 12]
    assert summary["selected_step"] in (3, 6, 9, 12)
    assert not (folder / "checkpoints").exists()  # cleaned up once complete


@pytest.mark.gpu
def test_qlora_trains_a_few_steps_on_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("QLoRA needs CUDA")
    pytest.importorskip("bitsandbytes", reason="pip install 'bakeoff[gpu]'")
    ctx, out = context(tmp_path / "run")
    a = agent(ctx, {**TINY, "method": "qlora"}, name="qlora")
    a.prepare()
    folder = tmp_path / "run" / "training" / "qlora"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["method"] == "qlora" and summary["device"] == "cuda"
    assert summary["final_val_loss"] < summary["initial_val_loss"]
    assert "4-bit NF4" in out.getvalue()
    assert (folder / "adapter" / "adapter_model.safetensors").is_file()
    answers = a.answer([Query("q1", "What is the Effective Date of the agreement?")])
    assert answers[0].error is None and answers[0].text.strip()


def quickstart(tmp_path: Path, limit: int) -> Path:
    text = (ROOT / "recipes" / "quickstart.yaml").read_text().replace("../data/", f"{ROOT}/data/")
    path = tmp_path / "quickstart.yaml"
    path.write_text(text.replace("  questions: ", f"  limit: {limit}\n  questions: "))
    return path


def run_once(cmd: list[str], runs: Path) -> tuple[float, Path, str]:
    before = set(runs.glob("quickstart/*"))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = set(runs.glob("quickstart/*")) - before
    return elapsed, run_dir, proc.stdout


def rouge_l(run_dir: Path, candidate: str) -> float:
    return json.loads((run_dir / "scores.json").read_text())["candidates"][candidate]["metrics"]["rougeL"][
        "mean"
    ]


@pytest.mark.slow
def test_quickstart_lora_learns_the_contract_and_reruns_from_the_cache(tmp_path, bakeoff_cmd):
    """The acceptance run: `bakeoff run recipes/quickstart.yaml --only lora` on a fixed set of 16 questions whose
    answers are only in the training data (the contract is fictional)."""
    recipe = quickstart(tmp_path, limit=16)
    runs = tmp_path / "runs"
    base = [*bakeoff_cmd, "run", str(recipe), "--runs-dir", str(runs), "--only"]
    trained_s, lora_run, _ = run_once([*base, "lora"], runs)
    hit_s, _, hit_out = run_once([*base, "lora"], runs)
    _, base_run, _ = run_once([*base, "zero-shot"], runs)

    folder = lora_run / "training" / "lora"
    rows = read_metrics(folder)
    val = [r["val_loss"] for r in rows if r["val_loss"] is not None]
    assert rows[0]["step"] == 0 and val[-1] < val[0]
    assert any(r["train_loss"] is not None for r in rows)
    assert "cache hit" in hit_out and trained_s >= 5 * hit_s, (trained_s, hit_s)
    lora, zero = rouge_l(lora_run, "lora"), rouge_l(base_run, "zero-shot")
    summary = json.loads((folder / "summary.json").read_text())
    print(
        f"\nROUGE-L lora {lora:.3f} vs zero-shot {zero:.3f}; train run {trained_s:.0f}s, cache-hit run {hit_s:.0f}s "
        f"({trained_s / hit_s:.1f}x); train {summary['train_seconds']:.0f}s at {summary['tokens_per_second']:.0f} "
        f"tokens/s; val loss {summary['initial_val_loss']:.3f} -> {summary['final_val_loss']:.3f}"
    )
    assert lora >= zero + 0.1, (lora, zero)
