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


# -- the table of reference kinds ------------------------------------------------------------------------------
def test_every_kind_is_in_the_table_once_and_its_jobs_resolve():
    import inspect

    from bakeoff.models.refs import REF_KINDS, ModelRef, kind_of

    kinds = {k.ref_type: k for k in REF_KINDS}
    assert set(kinds) == set(ModelRef.__subclasses__())
    for kind in REF_KINDS:
        assert kind.ref_type.scheme == kind.scheme and kind.form.startswith(kind.scheme + ":")
        for job in ("generate", "embed", "judge", "weights"):
            if kind.can(job):
                assert callable(kind.job(job)), (kind.scheme, job)
                assert "ref" in inspect.signature(kind.job(job)).parameters
            else:
                with pytest.raises(ValueError, match=f"{kind.scheme}: references cannot {job}"):
                    kind.job(job)
    assert kind_of(HFRef("/m")).scheme == "hf"


def test_scheme_patterns_and_messages_come_from_the_table():
    from bakeoff.models.refs import scheme_forms, scheme_pattern

    assert scheme_pattern() == "^(embedded|embedded-gguf|hf|ollama|openai-compatible|candidate):.+"
    assert scheme_pattern("embed") == "^(embedded|hf|ollama):.+"
    assert scheme_pattern("judge") == "^(embedded|hf|ollama|openai-compatible):.+"
    assert scheme_forms("weights") == "embedded:NAME, hf:PATH_OR_ID"
    with pytest.raises(ValueError, match=r"use one of embedded, hf, ollama \(openai-compatible: references"):
        parse_model_ref("openai-compatible:http://h/v1#m", embedding=True)


def test_the_recipe_schema_uses_the_generated_patterns():
    from bakeoff.recipe.schema import json_schema

    text = __import__("json").dumps(json_schema())
    assert '"^(embedded|embedded-gguf|hf|ollama|openai-compatible|candidate):.+"' in text
    assert '"^(embedded|hf|ollama):.+"' in text and '"^(embedded|hf|ollama|openai-compatible):.+"' in text


def test_kinds_that_cannot_do_a_job_say_which_can():
    from bakeoff.models.embeddings import EmbeddingError, load_embedder
    from bakeoff.models.generators import BackendError
    from bakeoff.models.registry import load_generator
    from bakeoff.models.weights import LocalWeightsError, local_weights

    with pytest.raises(BackendError, match="candidate:lora names another candidate of the same recipe"):
        load_generator(CandidateRef("lora"))
    with pytest.raises(
        EmbeddingError, match="not an embedding model; use embedded:NAME, hf:PATH_OR_ID, ollama:MODEL"
    ):
        load_embedder(OpenAICompatibleRef("http://h/v1", "m"))
    with pytest.raises(
        LocalWeightsError, match=r"ollama:m has no local weights \(a model served by Ollama\)"
    ):
        local_weights(OllamaRef("m"))
    with pytest.raises(LocalWeightsError, match="hf:no-such/model-here: no local weights"):
        local_weights(HFRef("no-such/model-here"))


def test_judges_reach_remote_models_and_serve_local_ones(monkeypatch):
    import importlib.util

    from bakeoff.models.chat_endpoint import chat_endpoint
    from bakeoff.models.generators import BackendError

    monkeypatch.setenv("OLLAMA_HOST", "gpu-box")
    remote = chat_endpoint(OllamaRef("llama3.1:8b"))
    assert (remote.base_url, remote.model, remote.serve, remote.served_by) == (
        "http://gpu-box:11434/v1",
        "llama3.1:8b",
        None,
        None,
    )
    vllm = chat_endpoint(OpenAICompatibleRef("http://h:8000/v1", "q"))
    assert (vllm.base_url, vllm.model) == ("http://h:8000/v1", "q")
    hf = chat_endpoint(HFRef("/models/x"))
    assert hf.serve is not None and hf.served_by == "transformers" and hf.base_url is None
    embedded = chat_endpoint(EmbeddedRef("smollm2-135m-instruct"))
    llama = importlib.util.find_spec("llama_cpp") is not None
    assert embedded.served_by == ("llama.cpp/repeat_penalty=1.1" if llama else "transformers")
    with pytest.raises(
        BackendError, match="cannot be a judge; use embedded:NAME, hf:PATH_OR_ID, ollama:MODEL"
    ):
        chat_endpoint(EmbeddedGGUFRef("/m.gguf"))


def test_the_defaults_are_embedded_models_from_the_catalogues():
    from bakeoff.models.refs import DEFAULT_EMBEDDINGS, DEFAULT_MODEL
    from bakeoff.recipe.schema import DEFAULT_BASE_MODEL

    assert parse_model_ref(str(DEFAULT_MODEL)) == DEFAULT_MODEL == parse_model_ref(DEFAULT_BASE_MODEL)
    assert parse_model_ref(str(DEFAULT_EMBEDDINGS), embedding=True) == DEFAULT_EMBEDDINGS
