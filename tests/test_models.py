import pytest

from bakeoff.models.refs import (
    CandidateRef,
    EmbeddedGGUFRef,
    EmbeddedRef,
    HFRef,
    OllamaRef,
    OpenAICompatibleRef,
    parse_model_ref,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("embedded:smollm2-135m-instruct", EmbeddedRef("smollm2-135m-instruct")),
        ("hf:/models/llama", HFRef("/models/llama")),
        ("hf:mistralai/Mistral-7B-v0.3", HFRef("mistralai/Mistral-7B-v0.3")),
        ("ollama:mistral:7b", OllamaRef("mistral:7b")),
        (
            "openai-compatible:http://gpu:8000/v1#qwen2.5-7b",
            OpenAICompatibleRef("http://gpu:8000/v1", "qwen2.5-7b"),
        ),
        ("candidate:lora", CandidateRef("lora")),
        ("embedded-gguf:/exports/lora.q4_k_m.gguf", EmbeddedGGUFRef("/exports/lora.q4_k_m.gguf")),
    ],
)
def test_parse_round_trips(text, expected):
    ref = parse_model_ref(text)
    assert ref == expected
    assert str(ref) == text
    assert parse_model_ref(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("gpt4", "no scheme"),
        ("s3:bucket/model", "unknown model scheme 's3'"),
        ("embedded:llama-70b", "unknown embedded model"),
        ("openai-compatible:gpu:8000#m", "http(s)://"),
        ("openai-compatible:http://gpu/v1", "http(s)://"),
        ("ollama:", "no scheme"),
        ("embedded-gguf:/models/lora", "path of a .gguf file"),
    ],
)
def test_bad_references_say_what_is_wrong(text, fragment):
    with pytest.raises(ValueError, match=None) as exc:
        parse_model_ref(text)
    assert fragment in str(exc.value)


def test_gguf_references_are_not_embedding_models():
    with pytest.raises(ValueError, match="unknown model scheme 'embedded-gguf'"):
        parse_model_ref("embedded-gguf:/m.gguf", embedding=True)
