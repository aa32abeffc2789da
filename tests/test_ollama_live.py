"""The same flows as tests/test_ollama_api.py, against a real Ollama server.

Runs only when ``OLLAMA_HOST`` is set and answers ``GET /api/version``; skipped otherwise (no server can be
installed on bakeoff's build machines). Optional: ``BAKEOFF_OLLAMA_TEST_MODEL`` (a pulled chat model, e.g.
``mistral:7b``) and ``BAKEOFF_OLLAMA_EMBED_MODEL`` (e.g. ``nomic-embed-text``) enable the few-shot recipe and
embedding checks. Run: ``OLLAMA_HOST=http://127.0.0.1:11434 pytest -m ollama tests/test_ollama_live.py``.
"""

from __future__ import annotations

import os

import httpx
import pytest
from ollama_flows import QUESTION, flow_missing_model, flow_register_chat_remove, flow_version

from bakeoff.core import GenerationSettings
from bakeoff.serving.ollama import resolve_host

pytestmark = pytest.mark.ollama


def _live_host() -> str | None:
    if not os.environ.get("OLLAMA_HOST"):
        return None
    host = resolve_host()
    try:
        httpx.get(f"{host}/api/version", timeout=3).raise_for_status()
    except httpx.HTTPError:
        return None
    return host


HOST = _live_host()
if HOST is None:
    pytest.skip("no Ollama server answers at OLLAMA_HOST", allow_module_level=True)


def test_version_and_missing_model():
    flow_version(HOST)
    flow_missing_model(HOST)


def test_register_the_exported_candidate_chat_and_remove(exported_f16):
    result = flow_register_chat_remove(HOST, exported_f16.path, "bakeoff-live-test-lora")
    assert result["first"].template_family == "ChatML" and result["reply"]


def test_fewshot_generation_with_a_pulled_model():
    model = os.environ.get("BAKEOFF_OLLAMA_TEST_MODEL")
    if not model:
        pytest.skip("set BAKEOFF_OLLAMA_TEST_MODEL to a pulled chat model (e.g. mistral:7b)")
    from bakeoff.models.refs import parse_model_ref
    from bakeoff.models.registry import load_generator

    gen = load_generator(parse_model_ref(f"ollama:{model}"), ollama_host=HOST)
    [out] = gen.generate([QUESTION], GenerationSettings(max_new_tokens=16))
    assert out.error is None and out.text and 0 < out.completion_tokens <= 16


def test_embeddings_with_a_pulled_model():
    model = os.environ.get("BAKEOFF_OLLAMA_EMBED_MODEL")
    if not model:
        pytest.skip("set BAKEOFF_OLLAMA_EMBED_MODEL to a pulled embedding model (e.g. nomic-embed-text)")
    from bakeoff.models.embeddings import OllamaEmbedder

    vecs = OllamaEmbedder(model, host=HOST).embed(["a contract", "an annex"])
    assert len(vecs) == 2 and all(abs(sum(v * v for v in vec) - 1) < 1e-6 for vec in vecs)


@pytest.mark.slow
def test_served_forms_are_evaluated_through_the_real_server(tmp_path):
    """A fine-tune's q8_0 export answers through llama.cpp in-process and through this Ollama server; with the
    derived template the real server agrees with llama.cpp and nothing is diagnosed."""
    import json

    from test_served import N_QUESTIONS, _answers, _recipe, _run

    from bakeoff.run.documents.scores import Scores
    from bakeoff.serving.ollama import OllamaServer

    run, _ = _run(_recipe(tmp_path, {"forms": ["q8_0"]}, ollama_host=HOST), tmp_path / "runs")
    served = json.loads((run / "manifest.json").read_text())["served"]
    remote = served["lora@ollama-q8_0"]
    try:
        assert "error" not in remote, remote.get("error")
        scores = Scores.read(run / "scores.json")
        parity = scores.served["lora@ollama-q8_0"]
        assert parity.n == N_QUESTIONS and parity.diagnosis is None
        answers = _answers(run)
        same = sum(answers["lora@ollama-q8_0"][q] == answers["lora@q8_0"][q] for q in answers["lora@q8_0"])
        assert same >= N_QUESTIONS // 2, f"only {same}/{N_QUESTIONS} answers agree between Ollama and llama.cpp"
    finally:
        with OllamaServer(HOST) as server:
            server.delete(remote.get("ollama_model") or "")
