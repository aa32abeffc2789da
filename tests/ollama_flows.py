"""Flows run both against the fake Ollama server (tests/test_ollama_api.py) and a real one
(tests/test_ollama_live.py, marker ``ollama``): the same calls, the same assertions."""

from __future__ import annotations

from pathlib import Path

import pytest

from bakeoff.core import GenerationSettings
from bakeoff.models.generators import BackendError
from bakeoff.serving.ollama import OllamaModelMissing, OllamaServer, full_name, parse_version
from bakeoff.serving.register import plan_registration, register_gguf

QUESTION = [{"role": "user", "content": "Say hello in three words."}]


def flow_version(host: str) -> str:
    with OllamaServer(host) as server:
        version = server.version()
        assert parse_version(version) > (0, 0, 0)
        assert server.require_create() == version
    return version


def flow_missing_model(host: str) -> None:
    from bakeoff.models.ollama_backend import OllamaGenerator

    name = "bakeoff-surely-missing-model:0.1b"
    with pytest.raises(BackendError) as exc:
        OllamaGenerator(name, host=host)
    msg = str(exc.value)
    assert host in msg and repr(name) in msg and "ollama pull" in msg
    with OllamaServer(host) as server, pytest.raises(OllamaModelMissing):
        server.delete(name)


def flow_register_chat_remove(host: str, gguf: Path, name: str) -> dict:
    """Register a GGUF, read it back, chat through the ``ollama:`` backend, re-register (blob skipped), remove."""
    from bakeoff.models.ollama_backend import OllamaGenerator

    plan = plan_registration(gguf, name)
    with OllamaServer(host) as server:
        first = register_gguf(plan, server)
        shown = server.show(name)
        assert shown.template == plan.template.template
        for stop in plan.template.stop:
            assert stop in (shown.parameters or "")
        assert any(m["name"] == full_name(name) for m in server.list())

        gen = OllamaGenerator(name, host=host)
        [out] = gen.generate([QUESTION], GenerationSettings(max_new_tokens=12))
        assert out.error is None and out.text, out
        assert 0 < out.completion_tokens <= 12 and out.prompt_tokens > 0
        streamed = "".join(gen.stream(QUESTION, GenerationSettings(max_new_tokens=12)))
        assert streamed.strip() == out.text, (streamed, out.text)  # greedy: streaming and not agree

        again = register_gguf(plan, server, replace=True)
        assert not again.uploaded  # HEAD /api/blobs said the server has it

        server.delete(name)
        assert not server.exists(name)
    return {"first": first, "again": again, "reply": out.text}
