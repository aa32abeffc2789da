"""Fixtures for export and Ollama tests (loaded by conftest as a pytest plugin, so session fixtures run once).

``finetuned_run`` writes a run folder in exactly the layout the fine-tune agent produces:
``<run>/training/<candidate>/adapter/`` (peft ``adapter_model.safetensors`` + ``adapter_config.json`` +
tokenizer files with the chat template), ``<run>/training/<candidate>/summary.json``, ``recipe.yaml`` and
``manifest.json`` (``candidates[name].model`` is the base model). The adapter is a real peft LoRA on the
embedded SmolLM2 whose B matrices hold seeded random values (peft initialises them to zero), so the merged
model differs from the base while staying a working model.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CANDIDATE = "lora"
BASE_MODEL = "embedded:smollm2-135m-instruct"
RECIPE = """\
name: quickstart-ft
description: A fine-tuned candidate (test fixture in the fine-tune agent's run layout).
base_model: embedded:smollm2-135m-instruct
task: qa
eval:
  questions: ../data/contract-qa.jsonl
candidates:
  - name: lora
    agent: finetuned
"""

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
    "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def make_finetuned_run(runs_dir: Path, *, seed: int = 0, scale: float = 0.02) -> Path:
    """Write a fake run with a seeded LoRA adapter for candidate ``lora``; return the run folder."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bakeoff.models.embedded import ensure_imported

    base = ensure_imported("smollm2-135m-instruct", quiet=True)
    run = runs_dir / "quickstart-ft" / "20261121-120000-ab12"
    adapter = run / "training" / CANDIDATE / "adapter"
    adapter.mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(base)
    config = LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(seed)  # peft draws A from the global generator
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * scale)
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    (run / "training" / CANDIDATE / "summary.json").write_text(
        json.dumps(
            {"candidate": CANDIDATE, "base_model": BASE_MODEL, "method": "lora", "steps": 0, "seed": seed}
        )
    )
    (run / "recipe.yaml").write_text(RECIPE)
    (run / "manifest.json").write_text(
        json.dumps(
            {
                "run_id": run.name,
                "recipe": "quickstart-ft",
                "status": "complete",
                "started_at": "2026-11-21T12:00:00+00:00",
                "candidates": {CANDIDATE: {"agent": "finetuned", "model": BASE_MODEL}},
            }
        )
    )
    return run


def tiny_gguf(path: Path, *, template: str = CHATML, add_bos: bool = False) -> Path:
    """A minimal but valid GGUF (ChatML tokens, one tensor) for API tests that never run the model."""
    import numpy as np
    from gguf import GGUFWriter

    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "hello", "world"]
    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(64)
    writer.add_file_type(1)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3, 1, 1])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_add_bos_token(add_bos)
    writer.add_chat_template(template)
    writer.add_tensor("token_embd.weight", np.zeros((len(tokens), 8), dtype=np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def finetuned_run(tmp_path_factory) -> Path:
    return make_finetuned_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="session")
def exported_f16(finetuned_run):
    """The ``lora`` candidate exported to an F16 GGUF (merge + llama.cpp converter), once per session."""
    from bakeoff.serving.export import export_gguf

    return export_gguf(finetuned_run, CANDIDATE, quantize="f16")


@pytest.fixture(scope="session")
def exported_q8(finetuned_run, exported_f16):
    from bakeoff.serving.export import export_gguf

    return export_gguf(finetuned_run, CANDIDATE, quantize="q8_0")


def merged_pytorch(run: Path, *, f16_weights: bool = False):
    """The PyTorch side: base + adapter merged (peft merge_and_unload) in the batched transformers backend.

    ``f16_weights`` rounds the merged weights to float16 (computing in float32), i.e. the weights an F16 GGUF
    holds: comparing against it isolates converter and engine from the rounding itself, which can flip a
    greedy choice between two near-tied tokens.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bakeoff.models.embedded import ensure_imported
    from bakeoff.models.transformers_backend import TransformersGenerator

    adapter = run / "training" / CANDIDATE / "adapter"
    model = AutoModelForCausalLM.from_pretrained(
        ensure_imported("smollm2-135m-instruct"), dtype=torch.float32
    )
    merged = PeftModel.from_pretrained(model, adapter).merge_and_unload().eval()
    if f16_weights:
        with torch.no_grad():
            for param in merged.parameters():
                param.copy_(param.half().float())
    return TransformersGenerator(merged, AutoTokenizer.from_pretrained(adapter), name="merged-pytorch")


@pytest.fixture(scope="session")
def merged_generator(finetuned_run):
    return merged_pytorch(finetuned_run)


@pytest.fixture(scope="session")
def merged_generator_f16(finetuned_run):
    return merged_pytorch(finetuned_run, f16_weights=True)
