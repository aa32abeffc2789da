"""The real embedded model: import, batched greedy generation, streaming."""

import json

from bakeoff.core import GenerationSettings


def test_import_produces_a_trainable_safetensors_model(embedded_generator):
    from bakeoff.models.embedded import ensure_imported

    folder = ensure_imported("smollm2-135m-instruct")
    assert (folder / "model.safetensors").is_file()
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config  # peft refuses models that still carry the GGUF flag
    assert config["model_type"] == "llama"
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    template = tok_cfg.get("chat_template") or (folder / "chat_template.jinja").read_text()
    assert "<|im_start|>" in template


def test_model_answers_a_general_knowledge_question(embedded_generator):
    convo = [{"role": "user", "content": "What is the capital of France?"}]
    [out] = embedded_generator.generate([convo], GenerationSettings(max_new_tokens=24))
    assert "Paris" in out.text
    assert out.prompt_tokens > 5 and 0 < out.completion_tokens <= 24
    assert out.error is None


def test_batched_greedy_matches_one_by_one(embedded_generator):
    questions = [
        "What is the capital of France?",
        "Name a primary colour.",
        "What is 2 + 2?",
        "Who wrote Hamlet?",
    ]
    convos = [[{"role": "user", "content": q}] for q in questions]
    settings = GenerationSettings(max_new_tokens=16, batch_size=4)
    batched = embedded_generator.generate(convos, settings)
    single = [
        embedded_generator.generate([c], settings.model_copy(update={"batch_size": 1}))[0] for c in convos
    ]
    assert len(batched) == 4
    # left padding must not change greedy answers (allow one numerically borderline divergence)
    same = sum(b.text == s.text for b, s in zip(batched, single, strict=True))
    assert same >= 3, [(b.text, s.text) for b, s in zip(batched, single, strict=True)]
    assert all(b.prompt_tokens == s.prompt_tokens for b, s in zip(batched, single, strict=True))


def test_max_new_tokens_is_enforced_and_reported(embedded_generator):
    convo = [{"role": "user", "content": "Write a long story about a dragon."}]
    [out] = embedded_generator.generate([convo], GenerationSettings(max_new_tokens=5))
    assert out.completion_tokens == 5 and out.truncated


def test_stream_yields_the_same_text_as_generate(embedded_generator):
    convo = [{"role": "user", "content": "What is the capital of France?"}]
    settings = GenerationSettings(max_new_tokens=20)
    streamed = "".join(embedded_generator.stream(convo, settings)).strip()
    [out] = embedded_generator.generate([convo], settings)
    assert streamed == out.text


def test_over_long_prompts_are_cut_from_the_left_and_counted(embedded_generator, monkeypatch):
    monkeypatch.setattr(type(embedded_generator), "context_length", property(lambda self: 64))
    long = "Background: " + "the contract has many clauses. " * 40
    convo = [
        {"role": "system", "content": long},
        {"role": "user", "content": "What is the capital of France?"},
    ]
    short = [{"role": "user", "content": "Hi"}]
    out_long, out_short = embedded_generator.generate([convo, short], GenerationSettings(max_new_tokens=8))
    assert out_long.prompt_truncated and not out_short.prompt_truncated
    assert out_long.prompt_tokens <= 64 - 8
