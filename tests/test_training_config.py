"""The `train:` block, training data, sweeps and the QLoRA configuration — no training here."""

import json
from pathlib import Path

import pytest

from bakeoff.questions import DataError
from bakeoff.recipe.load import RecipeError, load_recipe
from bakeoff.run.runner import select_candidates
from bakeoff.training.config import DataSettings
from bakeoff.training.data import ALPACA_CHAT_TEMPLATE, build_training_data, split_sizes
from bakeoff.training.quantization import QLORA_QUANTIZATION, effective_method, qlora_quantization_config

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ROOT / "data" / "contract-train.jsonl"

HEAD = f"""\
name: ft
eval:
  questions: {ROOT}/data/contract-qa.jsonl
candidates:
"""


def recipe(tmp_path: Path, body: str, head: str = HEAD) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(head + body)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    return [str(p) for p in exc.value.problems]


LORA = f"""\
  - name: lora
    agent: finetuned
    train:
      data: {{kind: instruct, path: {TRAIN}}}
"""


def test_minimal_finetuned_candidate_gets_documented_defaults(tmp_path):
    cand = load_recipe(recipe(tmp_path, LORA)).candidate("lora")
    t = cand.train
    assert (t.method, t.select, t.lora.r, t.lora.target_modules, t.packing) == (
        "lora",
        "best_val",
        16,
        "all-linear",
        False,
    )
    assert t.gradient_checkpointing is None and t.data.template == "chat" and t.data.path == TRAIN
    assert cand.system and "briefly" in cand.system


@pytest.mark.parametrize(
    ("train", "where", "fragment"),
    [
        ("      method: dora\n", ":9:15: candidates[0].train.method", "'lora', 'qlora' or 'full'"),
        ("      select: best\n", ":9:15: candidates[0].train.select", "best_val, last or step:N"),
        ("      lr: 0.1\n", ":9:7: candidates[0].train.lr", "unknown key 'lr'"),
        ("      lora: {r: 0}\n", ":9:17: candidates[0].train.lora.r", "greater than or equal to 1"),
        (
            "      lora: {target_modules: [lm_head]}\n",
            ":9:30: candidates[0].train.lora.target_modules",
            "'lm_head' cannot be adapted",
        ),
        (
            "      max_steps: 5\n      select: step:9\n",
            "candidates[0].train",
            "step:9 is after max_steps (5)",
        ),
        ("      method: full\n      merge: true\n", "candidates[0].train", "merge: only applies"),
    ],
)
def test_train_block_errors_are_located_and_name_keys(tmp_path, train, where, fragment):
    found = problems(recipe(tmp_path, LORA + train))
    assert any(where in p and fragment in p for p in found), found


def test_data_block_checks_per_kind(tmp_path):
    body = """\
  - name: c
    agent: finetuned
    train:
      data: {kind: causal, template: alpaca}
  - name: i
    agent: finetuned
    train:
      data: {kind: instruct}
"""
    found = problems(recipe(tmp_path, body))
    assert any("candidates[0].train.data" in p and "template: only for kind: instruct" in p for p in found)
    assert any("candidates[0].train.data" in p and "add a top-level `corpus:` block" in p for p in found)
    assert any("candidates[1].train.data" in p and "needs `path:`" in p for p in found), found


def test_causal_with_a_corpus_validates(tmp_path):
    head = HEAD.replace("candidates:\n", f"corpus:\n  paths: [{ROOT}/data/contract]\ncandidates:\n")
    body = "  - name: c\n    agent: finetuned\n    train:\n      data: {kind: causal}\n"
    assert load_recipe(recipe(tmp_path, body, head)).candidate("c").train.data.kind == "causal"


def test_a_remote_model_cannot_be_fine_tuned(tmp_path):
    found = problems(recipe(tmp_path, LORA + "    model: ollama:mistral:7b\n"))
    assert any("candidates[0]" in p and "cannot be fine-tuned here" in p for p in found), found
    found = problems(
        recipe(tmp_path, LORA, HEAD.replace("name: ft\n", "name: ft\nbase_model: ollama:llama3\n"))
    )
    assert any("base_model ollama:llama3 cannot be fine-tuned" in p for p in found), found


# -- sweeps ------------------------------------------------------------------------------------------------------
def test_sweep_expands_to_named_candidates_with_cartesian_product(tmp_path):
    body = LORA + "    sweep: {learning_rate: [5.0e-5, 3.0e-5], r: [8, 16]}\n"
    r = load_recipe(recipe(tmp_path, body))
    assert r.names == [
        "lora[lr=5e-5][r=8]",
        "lora[lr=5e-5][r=16]",
        "lora[lr=3e-5][r=8]",
        "lora[lr=3e-5][r=16]",
    ]
    assert [(c.train.learning_rate, c.train.lora.r) for c in r.candidates] == [
        (5e-5, 8),
        (5e-5, 16),
        (3e-5, 8),
        (3e-5, 16),
    ]
    # --only with the swept name selects the whole sweep
    answering, _ = select_candidates(r, ["lora"])
    assert len(answering) == 4
    answering, _ = select_candidates(r, ["lora[lr=3e-5][r=8]"])
    assert [c.name for c in answering] == ["lora[lr=3e-5][r=8]"]


def test_sweep_errors_point_into_the_sweep_and_are_reported_once(tmp_path):
    body = LORA + "      batch_sise: 4\n    sweep:\n      learning_rate: [5.0e-5, -1]\n      nope: [1]\n"
    path = recipe(tmp_path, body)
    found = problems(path)
    assert any(
        p.startswith(f"{path}:11:31: candidates[0].sweep.learning_rate[1]:") and "greater than 0" in p
        for p in found
    ), found
    assert any(":12:7: candidates[0].sweep.nope: unknown sweep key 'nope'" in p for p in found), found
    # the typo outside the sweep is in both expanded copies but reported once, at its own line
    assert sum("batch_sise" in p for p in found) == 1, found
    assert any(":9:7: candidates[0].train.batch_sise: unknown key" in p for p in found), found


def test_reference_to_a_swept_candidate_says_which_names_exist(tmp_path):
    body = (
        LORA
        + "    sweep: {learning_rate: [1.0e-4, 2.0e-4]}\n  - name: chat\n    agent: fewshot\n"
        + "    model: candidate:lora\n"
    )
    found = problems(recipe(tmp_path, body))
    assert any("swept into lora[lr=1e-4], lora[lr=2e-4]" in p for p in found), found


def test_dotted_sweep_keys_and_fewshot_sweeps(tmp_path):
    body = LORA + "    sweep: {train.lora.alpha: [16, 64]}\n  - name: shots\n    agent: fewshot\n"
    body += f"    examples: {ROOT}/data/contract-examples.jsonl\n    sweep: {{k: [1, 3]}}\n"
    r = load_recipe(recipe(tmp_path, body))
    assert r.names == ["lora[alpha=16]", "lora[alpha=64]", "shots[k=1]", "shots[k=3]"]
    assert r.candidate("lora[alpha=64]").train.lora.alpha == 64
    assert r.candidate("shots[k=3]").k == 3


# -- data --------------------------------------------------------------------------------------------------------
def test_split_sizes_default_80_10_10_and_small_data():
    assert split_sizes(308, 0.1, 0.1) == (246, 31, 31)
    assert split_sizes(5, 0.1, 0.0) == (4, 1, 0)
    with pytest.raises(DataError, match="cannot be split"):
        split_sizes(2, 0.1, 0.1)


def test_instruct_data_is_prompt_completion_split_and_hashed():
    spec = DataSettings(kind="instruct", path=TRAIN)
    data = build_training_data(spec, system="Be brief.", seed=0)
    assert (len(data.train), len(data.validation), len(data.test)) == (246, 31, 31)
    first = data.train[0]
    assert first["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert first["prompt"][1]["role"] == "user" and first["completion"][0]["role"] == "assistant"
    # seeded: same split, same hash; another seed, another split
    assert build_training_data(spec, system="Be brief.", seed=0).digest == data.digest
    other = build_training_data(spec, system="Be brief.", seed=1)
    assert other.digest != data.digest and len(other.train) == 246
    # every example lands in exactly one split
    texts = lambda d: sorted(r["prompt"][-1]["content"] for r in d.train + d.validation + d.test)  # noqa: E731
    assert texts(data) == texts(other)


def test_chat_and_alpaca_forms_and_bad_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"instruction": "Translate", "input": "chat", "output": "cat"},
    ] * 5
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data = build_training_data(
        DataSettings(kind="instruct", path=path, template="alpaca"), system=None, seed=0
    )
    everything = data.train + data.validation
    assert {r["completion"][0]["content"] for r in everything} == {"hello", "cat"}
    assert any(r["prompt"][-1]["content"] == "Translate\n\n### Input:\nchat" for r in everything)
    path.write_text('{"instruction": "q", "output": "a"}\n{"messages": [{"role": "user", "content": "x"}]}\n')
    with pytest.raises(DataError, match=r"d.jsonl:2: the last message must be the assistant's"):
        build_training_data(DataSettings(kind="instruct", path=path), system=None, seed=0)


def test_alpaca_template_renders_the_alpaca_prompt():
    from transformers import AutoTokenizer

    from bakeoff.models.embedded import ensure_imported

    tok = AutoTokenizer.from_pretrained(ensure_imported("smollm2-135m-instruct"))
    tok.chat_template = ALPACA_CHAT_TEMPLATE
    text = tok.apply_chat_template(
        [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A."}], tokenize=False
    )
    assert text.startswith("Below is an instruction that describes a task.")
    assert "### Instruction:\nQ?\n\n### Response:\nA." + tok.eos_token in text
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": "Q?"}], tokenize=False, add_generation_prompt=True
    )
    assert prompt.endswith("### Instruction:\nQ?\n\n### Response:\n") and text.startswith(prompt)


def test_causal_data_from_chunks_has_no_test_split_by_default():
    chunks = [f"chunk {i} " * 20 for i in range(30)]
    data = build_training_data(DataSettings(kind="causal"), system=None, seed=0, chunks=chunks)
    assert (len(data.train), len(data.validation), len(data.test)) == (27, 3, 0)
    assert "text" in data.train[0]


# -- QLoRA -------------------------------------------------------------------------------------------------------
def test_qlora_loads_4bit_nf4_double_quantized_with_bf16_compute():
    import torch

    assert QLORA_QUANTIZATION == {
        "load_in_4bit": True,
        "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_use_double_quant": True,
        "bnb_4bit_compute_dtype": "bfloat16",
    }
    config = qlora_quantization_config()  # a transformers BitsAndBytesConfig; building it needs no GPU
    assert config.load_in_4bit and not config.load_in_8bit
    assert config.bnb_4bit_quant_type == "nf4" and config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == torch.bfloat16


def test_qlora_falls_back_to_lora_without_cuda():
    method, why = effective_method("qlora", cuda=False)
    assert method == "lora" and "CUDA" in why
    assert effective_method("lora", cuda=False) == ("lora", None)
    assert effective_method("full", cuda=True) == ("full", None)
