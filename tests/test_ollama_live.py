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
