"""A private OpenAI-compatible endpoint on 127.0.0.1 for a model bakeoff runs itself.

Why: judges (RAGAS through instructor, the rubric judge) speak the OpenAI chat-completions protocol. Serving
the embedded model the same way means an embedded judge, an Ollama judge and a vLLM judge go through one code
path, and what is cached, counted and timed is the same for all three.

The server serves any :class:`~bakeoff.models.generators.Generator`. A request that asks for JSON
(``response_format``) goes to the generator's ``generate_json`` when it has the
:class:`~bakeoff.models.generators.JSONReplies` capability — the embedded judge runs in
:class:`~bakeoff.models.llama_cpp_backend.LlamaCppChat`, which constrains decoding to the JSON schema (a
grammar), so a 135M judge asked for RAGAS' JSON returns parseable JSON instead of prose; other generators
(``hf:`` folders, or the embedded model when llama.cpp is missing) are only asked for JSON in the prompt.
``llama-cpp-python[server]`` would pull FastAPI and uvicorn for what is one route here, so the HTTP side is
the standard library's threading server.

Requests are answered one at a time (one model, 2 cores: parallel decoding only thrashes the CPU); the
server counts them (``requests``) so tests can prove a second scoring made no judge calls.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bakeoff.core import Generation, GenerationSettings
from bakeoff.models.generators import Generator, JSONReplies

__all__ = ["LocalOpenAIServer"]


def _schema_of(response_format: Any) -> tuple[dict[str, Any] | None, bool]:
    """(JSON schema, JSON mode) requested by an OpenAI ``response_format``."""
    if not isinstance(response_format, dict):
        return None, False
    kind = response_format.get("type")
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        return spec.get("schema"), True
    if kind == "json_object":
        return response_format.get("schema"), True
    return None, False


class LocalOpenAIServer:
    """``/v1/chat/completions`` and ``/v1/models`` for one generator, on 127.0.0.1 and a free port.

    Use as a context manager; :attr:`base_url` is the ``…/v1`` URL to give an OpenAI client.
    """

    def __init__(self, generator: Generator, model: str | None = None) -> None:
        self.generator = generator
        self.model = model or generator.name
        self.requests = 0
        self.busy_s = 0.0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> LocalOpenAIServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet: bakeoff prints its own progress
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}"}})

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                try:
                    length = int(self.headers.get("Content-Length") or 0)
                    body = json.loads(self.rfile.read(length) or b"{}")
                    messages = body["messages"]
                    if body.get("stream"):
                        raise ValueError("streaming is not supported by this endpoint")
                except (ValueError, KeyError, TypeError) as exc:
                    self._send(400, {"error": {"message": f"bad request: {exc}"}})
                    return
                self._send(*server._complete(body, messages))

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bakeoff-judge", daemon=True)
        self._thread.start()
        return self

    def _reply(self, body: dict[str, Any], messages: list[dict[str, str]]) -> Generation:
        """One generation for a request: JSON-constrained when asked and the generator can."""
        schema, json_mode = _schema_of(body.get("response_format"))
        settings = GenerationSettings(
            max_new_tokens=int(body.get("max_tokens") or body.get("max_completion_tokens") or 256),
            temperature=float(body.get("temperature") or 0.0),
            batch_size=1,
        )
        if json_mode and isinstance(self.generator, JSONReplies):
            return self.generator.generate_json(messages, settings, schema)
        [gen] = self.generator.generate([messages], settings)
        return gen

    def _complete(self, body: dict[str, Any], messages: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests += 1
            t0 = time.perf_counter()
            try:
                reply = self._reply(body, messages)
            except Exception as exc:  # a failed generation is an HTTP 500 the client reports, not a crash
                return 500, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
            finally:
                self.busy_s += time.perf_counter() - t0
        if reply.error:
            return 500, {"error": {"message": reply.error}}
        return 200, {
            "id": f"chatcmpl-bakeoff-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": "length" if reply.truncated else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LocalOpenAIServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
