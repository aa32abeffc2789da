"""The one OpenAI-compatible client (the official `openai` package): retries with backoff on 429/5xx and
connection errors, for answering and for judging, against a real HTTP server on 127.0.0.1."""

import asyncio
import socket
import time

import openai  # noqa: F401  (imported up front: the timings below measure requests and waits, not imports)
import pytest
from fake_openai import FakeOpenAI

from bakeoff.core import GenerationSettings
from bakeoff.eval.judge import Judge
from bakeoff.eval.settings import JudgeSpec
from bakeoff.models.openai_compatible import OpenAICompatibleGenerator

HELLO = [{"role": "user", "content": "hello there"}]


@pytest.mark.parametrize("failures", [[429], [500, 500], [503, 429, 502]])
def test_answering_survives_rate_limits_and_server_errors(failures):
    with FakeOpenAI(failures=failures) as server:
        gen = OpenAICompatibleGenerator(server.url, "toy")
        t0 = time.perf_counter()
        [out] = gen.generate([HELLO], GenerationSettings())
        elapsed = time.perf_counter() - t0
    assert out.error is None and out.text == "echo: hello there" and out.completion_tokens == 3
    assert server.attempts == len(failures) + 1  # each failure retried once, then the success
    # openai's backoff: about 0.5 s, 1 s, 2 s (x 0.75-1 jitter) before the 1st, 2nd, 3rd retry
    waits = [0.5 * 2**i * 0.75 for i in range(len(failures))]
    assert sum(waits) * 0.9 <= elapsed < sum(waits) / 0.75 + 8  # a busy 2-core machine is slow


def test_streaming_retries_before_the_first_token():
    with FakeOpenAI(failures=[429, 500]) as server:
        gen = OpenAICompatibleGenerator(server.url, "toy")
        text = "".join(gen.stream([{"role": "user", "content": "a b"}], GenerationSettings()))
    assert text.strip() == "echo: a b" and server.attempts == 3


def test_retries_run_out_into_an_answer_error():
    with FakeOpenAI(failures=[500] * 5) as server:
        gen = OpenAICompatibleGenerator(server.url, "toy", max_retries=2)
        [out] = gen.generate([HELLO], GenerationSettings())
    assert out.text == "" and out.error == f"{server.url} answered HTTP 500: scripted failure 500"
    assert server.attempts == 3  # the first try and two retries, no more


def test_a_client_error_is_not_retried():
    with FakeOpenAI(failures=[400]) as server:
        [out] = OpenAICompatibleGenerator(server.url, "toy").generate([HELLO], GenerationSettings())
    assert "answered HTTP 400" in out.error and server.attempts == 1


def test_a_connection_error_is_retried_then_reported():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    gen = OpenAICompatibleGenerator(f"http://127.0.0.1:{port}/v1", "toy", max_retries=1)
    t0 = time.perf_counter()
    [out] = gen.generate([HELLO], GenerationSettings())
    assert out.error.startswith(f"cannot reach http://127.0.0.1:{port}/v1: ConnectError")
    assert time.perf_counter() - t0 >= 0.5 * 0.75 * 0.9  # one backoff wait happened


def test_a_slow_server_times_out():
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    release = threading.Event()

    class Silent(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            release.wait(10)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Silent)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        gen = OpenAICompatibleGenerator(url, "toy", timeout_s=0.3, max_retries=0)
        [out] = gen.generate([HELLO], GenerationSettings())
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()
    assert out.error == f"cannot reach {url}: no reply within the timeout"


def test_the_judge_client_retries_too():
    with FakeOpenAI(failures=[429, 500]) as server:
        spec = JudgeSpec.model_validate({"model": f"openai-compatible:{server.url}#judge", "timeout_s": 30})
        judge = Judge(spec)

        async def ask():
            client = judge.async_openai()
            reply = await client.chat.completions.create(model="judge", messages=HELLO)
            return reply.choices[0].message.content

        assert asyncio.run(ask()) == "echo: hello there"
        assert server.attempts == 3 and judge.calls == 3  # every try is counted

        no_retries = Judge(
            JudgeSpec.model_validate({"model": f"openai-compatible:{server.url}#judge", "http_retries": 0})
        )
        server.failures = [503]

        async def fail():
            return await no_retries.async_openai().chat.completions.create(model="judge", messages=HELLO)

        with pytest.raises(Exception) as exc:
            asyncio.run(fail())
        assert no_retries.failure(exc.value).reason.startswith("judge answered HTTP 503")
