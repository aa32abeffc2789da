"""The one LoRA merge (training's ``merge: true``, answering with a LoRA, GGUF export): the merged folder
computes what the base plus the adapter computes."""

import json

import pytest


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    """A LoRA adapter with random (non-zero) weights on the embedded model, saved with a tokenizer."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bakeoff.models.embedded import ensure_imported

    base = ensure_imported("smollm2-135m-instruct", quiet=True)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    config = LoraConfig(
        r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False, task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(model, config)
    folder = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    ids = torch.tensor([[1, 42, 1337, 7, 99]])
    with torch.no_grad():
        expected = peft_model(input_ids=ids).logits
        plain = peft_model.get_base_model()
        with peft_model.disable_adapter():
            untouched = plain(input_ids=ids).logits
    return base, folder, ids, expected, untouched


@pytest.mark.parametrize("dtype", ["float32", "auto"])
def test_merged_folder_computes_base_plus_adapter(adapter, tmp_path, dtype):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bakeoff.training.merge import merge_lora

    base, folder, ids, expected, untouched = adapter
    out = tmp_path / "merged"
    out.mkdir()
    (out / "stale.txt").write_text("from an earlier merge")
    info = merge_lora(base, folder, out, dtype=dtype)
    assert info == {"dtype": "float32", "chat_template": True}  # the embedded checkpoint is float32
    assert not (out / "stale.txt").exists()  # the folder is replaced as a whole
    assert not (out / "adapter_config.json").exists()
    assert json.loads((out / "config.json").read_text())["model_type"] == "llama"
    merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        got = merged(input_ids=ids).logits
    assert torch.allclose(got, expected, atol=1e-4)
    assert not torch.allclose(got, untouched, atol=1e-3)  # the adapter changed something
    assert (
        AutoTokenizer.from_pretrained(out).chat_template
        == AutoTokenizer.from_pretrained(folder).chat_template
    )


def test_apply_adapter_merges_in_memory_or_keeps_the_peft_model(adapter):
    import torch
    from transformers import AutoModelForCausalLM

    from bakeoff.training.merge import apply_adapter

    base, folder, ids, expected, _ = adapter
    merged = apply_adapter(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), folder)
    kept = apply_adapter(AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32), folder, merge=False)
    assert not hasattr(merged, "peft_config") and hasattr(kept, "peft_config")
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, expected, atol=1e-4)
        assert torch.allclose(kept(input_ids=ids).logits, expected, atol=1e-4)
