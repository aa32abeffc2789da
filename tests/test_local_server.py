"""The private OpenAI-compatible endpoint serves any Generator; JSON requests use the JSON capability."""

import httpx
import pytest
from eval_toys import AgreeableJudge, RamblingJudge

from bakeoff.core import Generation
from bakeoff.models.generators import Generator, JSONReplies
from bakeoff.models.local_server import LocalOpenAIServer

SCHEMA = {"type": "object", "properties": {"score": {"type": "integer"}}, "required": ["score"]}


def _post(server, **body):
    body = {"model": server.model, "messages": [{"role": "user", "content": "grade it"}], **body}
    return httpx.post(f"{server.base_url}/chat/completions", json=body, timeout=30)


def test_json_requests_go_to_the_json_capability_and_plain_ones_to_generate():
    judge = AgreeableJudge()
    assert isinstance(judge, Generator) and isinstance(judge, JSONReplies)
    with LocalOpenAIServer(judge) as server:
        assert server.model == "agreeable-judge"
        models = httpx.get(f"{server.base_url}/models", timeout=30).json()
        assert models["data"][0]["id"] == "agreeable-judge"
        schema_fmt = {"type": "json_schema", "json_schema": {"name": "g", "schema": SCHEMA}}
        reply = _post(server, response_format=schema_fmt, max_tokens=20).json()
        assert reply["choices"][0]["message"]["content"] == '{"score": 1}'
        assert reply["choices"][0]["finish_reason"] == "stop"
        assert reply["usage"] == {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20}
        assert (
            _post(server, response_format={"type": "json_object"}).json()["choices"][0]["message"]["content"]
            == "{}"
        )
        assert _post(server).json()["choices"][0]["message"]["content"] == "{}"
        assert server.requests == 3 and judge.calls == 3


def test_a_generator_without_the_capability_is_only_asked():
    judge = RamblingJudge()
    assert not isinstance(judge, JSONReplies)
    with LocalOpenAIServer(judge, model="rambler") as server:
        reply = _post(server, response_format={"type": "json_object"}).json()
        assert reply["model"] == "rambler"
        assert reply["choices"][0]["message"]["content"] == "Well, it depends on many things."


class _Failing:
    name = "failing"

    def generate(self, conversations, settings, progress=None):
        assert settings.max_new_tokens == 7 and settings.temperature == pytest.approx(0.5)
        return [Generation("", error="RuntimeError: the model fell over")]

    def stream(self, conversation, settings):
        yield ""


class _Cut(_Failing):
    def generate(self, conversations, settings, progress=None):
        return [Generation("partial", completion_tokens=settings.max_new_tokens, truncated=True)]


def test_failed_and_cut_generations_are_reported_as_the_openai_protocol_does():
    with LocalOpenAIServer(_Failing()) as server:
        resp = _post(server, max_tokens=7, temperature=0.5)
        assert resp.status_code == 500 and "the model fell over" in resp.json()["error"]["message"]
        assert server.requests == 1
    with LocalOpenAIServer(_Cut()) as server:
        choice = _post(server, max_tokens=5).json()["choices"][0]
        assert choice["finish_reason"] == "length" and choice["message"]["content"] == "partial"
