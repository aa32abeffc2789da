"""A local HTTP server that behaves like Ollama for the API subset bakeoff uses (tests only).

Modelled on Ollama's server code (``server/create.go``, ``routes.go``) and API docs:

* real status codes: 400 for malformed requests (missing/invalid body, bad digest, bad file path, invalid name,
  ``quantize`` with a GGUF, ``adapters`` on newer servers, neither ``from`` nor ``files``), 404 for a missing
  model or blob, 201 for a new blob, 400 for a digest mismatch;
* NDJSON streaming (``stream`` absent or true) with Ollama's status lines, and errors that happen after
  streaming started arriving as an ``{"error": ...}`` line after HTTP 200 — exactly what happens for a file that
  is not GGUF, a template that does not parse, or (by fault injection) a failure after the manifest was written;
* ``/api/create`` stores the ``template`` and ``parameters`` it was given; ``/api/show`` returns them (parameters
  as Ollama's text block); ``/api/chat`` renders the stored Go template over the messages (bakeoff's renderer of
  Ollama's template subset) and asks a *responder* for the reply — canned by default, or a real llama.cpp run of
  the uploaded GGUF (:class:`LlamaCppResponder`), so a registered model can be chatted with for real.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bakeoff.serving.go_template import GoTemplateError, parse_go, render_go

_DIGEST = re.compile(r"^sha256[:-][0-9a-f]{64}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]*(:[A-Za-z0-9][A-Za-z0-9._\-]*)?$")


def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def _full(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@dataclass
class Reply:
    text: str
    prompt_tokens: int = 10
    done_reason: str = "stop"


Responder = Callable[[dict[str, Any], str, list[dict[str, str]], dict[str, Any]], Reply]


def canned_responder(
    model: dict[str, Any], prompt: str, messages: list[dict[str, str]], options: dict
) -> Reply:
    words = [
        "Hello",
        "from",
        "the",
        "fake",
        "Ollama",
        "server,",
        "happy",
        "to",
        "help",
        "with",
        "your",
        "questions.",
    ]
    n = int(options.get("num_predict") or len(words))
    return Reply(
        " ".join(words[:n]),
        prompt_tokens=len(prompt.split()),
        done_reason="length" if n < len(words) else "stop",
    )


@dataclass
class FakeOllama:
    """Start with ``with FakeOllama() as fake: fake.url``; inspect ``fake.requests`` / ``fake.models``."""

    version: str | None = "0.12.6"
    responder: Responder = canned_responder
    blob_dir: Path | None = None
    faults: dict[str, Any] = field(default_factory=dict)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    blobs: dict[str, Path] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._tmp = None

    # -- lifecycle -----------------------------------------------------------------------------------------
    def __enter__(self) -> FakeOllama:
        import tempfile

        if self.blob_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="fake-ollama-")
            self.blob_dir = Path(self._tmp.name)
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_model(
        self, name: str, *, template: str = "{{ range .Messages }}{{ .Content }}{{ end }}", **extra
    ) -> None:
        """A model as if pulled (``ollama pull``)."""
        self.models[_full(name)] = {
            "template": template,
            "parameters": extra.pop("parameters", {}),
            "files": {},
            "digest": hashlib.sha256(name.encode()).hexdigest(),
            "size": 4_000_000_000,
            "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "details": {
                "format": "gguf",
                "family": "llama",
                "parameter_size": "7B",
                "quantization_level": "Q4_K_M",
            },
            **extra,
        }

    def calls(self, method: str, prefix: str) -> list[Any]:
        return [body for m, p, body in self.requests if m == method and p.startswith(prefix)]


def _show_parameters(params: dict[str, Any]) -> str:
    lines = []
    for key, value in params.items():
        for v in value if isinstance(value, list) else [value]:
            shown = json.dumps(v) if isinstance(v, str) else str(v)
            lines.append(f"{key:<30} {shown}")
    return "\n".join(lines)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOllama
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # quiet
        pass

    # -- plumbing ------------------------------------------------------------------------------------------
    def _body_bytes(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json_body(self) -> tuple[dict[str, Any] | None, str | None]:
        raw = self._body_bytes()
        if not raw.strip():
            return None, "missing request body"
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            return None, f"invalid character in request body: {exc.msg}"
        if not isinstance(data, dict):
            return None, "json: cannot unmarshal array into Go value of type api.Request"
        return data, None

    def _send(self, status: int, payload: Any = None, *, text: str | None = None) -> None:
        body = (
            text.encode()
            if text is not None
            else (json.dumps(payload).encode() if payload is not None else b"")
        )
        self.send_response(status)
        self.send_header(
            "Content-Type", "text/plain; charset=utf-8" if text is not None else "application/json"
        )
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": message})

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _line(self, obj: dict[str, Any]) -> None:
        data = (json.dumps(obj) + "\n").encode()
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _record(self, body: Any) -> None:
        self.fake.requests.append((self.command, self.path, body))

    # -- routes --------------------------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802
        self._record(None)
        if self.path == "/api/version" and self.fake.version is not None:
            return self._send(200, {"version": self.fake.version})
        if self.path == "/api/tags":
            return self._send(200, {"models": [self._tag(name, m) for name, m in self.fake.models.items()]})
        return self._send(404, text="404 page not found")

    def do_HEAD(self) -> None:  # noqa: N802
        self._record(None)
        m = re.match(r"^/api/blobs/(.+)$", self.path)
        if not m:
            return self._send(404, text="")
        digest = m.group(1)
        if not _DIGEST.match(digest):
            return self._send(400, {"error": "invalid digest format"})
        return self._send(200 if digest.replace("-", ":", 1) in self.fake.blobs else 404)

    def do_DELETE(self) -> None:  # noqa: N802
        data, problem = self._json_body()
        self._record(data)
        if self.path != "/api/delete":
            return self._send(404, text="404 page not found")
        if problem:
            return self._error(400, problem)
        name = data.get("model") or data.get("name")
        if not name:
            return self._error(400, "model is required")
        if _full(name) not in self.fake.models:
            return self._error(404, f"model '{name}' not found")
        del self.fake.models[_full(name)]
        return self._send(200)

    def do_POST(self) -> None:  # noqa: N802
        m = re.match(r"^/api/blobs/(.+)$", self.path)
        if m:
            return self._post_blob(m.group(1))
        data, problem = self._json_body()
        self._record(data)
        routes = {
            "/api/create": self._create,
            "/api/show": self._show,
            "/api/chat": self._chat,
            "/api/embed": self._embed,
        }
        route = routes.get(self.path)
        if route is None:
            return self._send(404, text="404 page not found")
        if problem:
            return self._error(400, problem)
        return route(data)

    def _post_blob(self, digest: str) -> None:
        raw = self._body_bytes()
        self._record({"bytes": len(raw)})
        if not _DIGEST.match(digest):
            return self._error(400, "invalid digest format")
        key = digest.replace("-", ":", 1)
        got = "sha256:" + hashlib.sha256(raw).hexdigest()
        if got != key:
            return self._error(400, f'digest mismatch, expected "{key}", got "{got}"')
        if key in self.fake.blobs:
            return self._send(200)
        path = self.fake.blob_dir / key.replace(":", "-")
        path.write_bytes(raw)
        self.fake.blobs[key] = path
        return self._send(201)

    # -- /api/create ---------------------------------------------------------------------------------------
    def _create(self, r: dict[str, Any]) -> None:
        fake = self.fake
        if fake.version and _version_tuple(fake.version) < (0, 5, 5):
            if not r.get("modelfile"):
                return self._error(400, "error reading modelfile: modelfile is required")
            return self._error(400, "bakeoff's fake server does not implement Modelfile creation")
        files = r.get("files")
        if files is not None and not isinstance(files, dict):
            return self._error(400, "json: cannot unmarshal array into Go struct field CreateRequest.files")
        if r.get("adapters") and _version_tuple(fake.version or "0") >= (0, 13, 0):
            return self._error(400, "LoRA adapters are no longer supported")
        name = r.get("model") or r.get("name") or ""
        if not _NAME.match(name):
            return self._error(400, "invalid model name")
        for path, digest in (files or {}).items():
            if (
                path in (".", "")
                or path.startswith("/")
                or ".." in path.split("/")
                or "\\" in path
                or ":" in path
            ):
                return self._error(400, f"file path must be relative: {path}")
            if not isinstance(digest, str) or not _DIGEST.match(digest):
                return self._error(400, f"invalid digest for {path}: invalid digest format")
            if digest.replace("-", ":", 1) not in fake.blobs:
                return self._error(400, f"blob not found for {path} (digest {digest}): file does not exist")
        is_gguf = any(p.endswith(".gguf") for p in files or {})
        if (r.get("quantize") or r.get("quantization")) and (is_gguf or r.get("from")):
            return self._error(
                400,
                "create-time quantization is only supported for safetensors imports; quantize GGUF models with "
                "llama.cpp tools before importing",
            )
        if not files and not r.get("from"):
            return self._error(400, "neither 'from' or 'files' was specified")
        if r.get("from") and _full(r["from"]) not in fake.models:
            return self._error(404, f"model '{r['from']}' not found")

        # Past validation: Ollama starts streaming; failures from here on are error lines after HTTP 200.
        lines: list[dict[str, Any]] = []
        error: str | None = None
        record: dict[str, Any] = {}
        if files:
            lines.append({"status": "parsing GGUF"})
            for digest in files.values():
                blob = fake.blobs[digest.replace("-", ":", 1)]
                if blob.read_bytes()[:4] != b"GGUF":
                    error = "supplied file was not in GGUF format"
                    break
                lines.append({"status": f"using existing layer {digest.replace(':', '-', 1)}"})
            blobs = [fake.blobs[d.replace("-", ":", 1)] for d in files.values()]
            record = {
                "files": dict(files),
                "size": sum(b.stat().st_size for b in blobs),
                "blob_path": str(blobs[0]),
            }
        else:
            base = fake.models[_full(r["from"])]
            record = {"files": dict(base["files"]), "size": base["size"]}
        template = r.get("template")
        if error is None and template is not None:
            try:
                parse_go(template)
            except GoTemplateError as exc:
                error = f"template error: {exc}"
            else:
                lines.append(
                    {"status": f"creating new layer sha256:{hashlib.sha256(template.encode()).hexdigest()}"}
                )
        if error is None and r.get("parameters"):
            lines.append(
                {
                    "status": "creating new layer sha256:"
                    + hashlib.sha256(json.dumps(r["parameters"]).encode()).hexdigest()
                }
            )
        if error is None:
            lines.append({"status": "writing manifest"})
            stored_template = template if template is not None else "{{ .Prompt }}"
            fake.models[_full(name)] = {
                **record,
                "template": fake.faults.get("store_template", stored_template),
                "parameters": dict(r.get("parameters") or {}),
                "system": r.get("system"),
                "digest": hashlib.sha256(json.dumps(r, sort_keys=True).encode()).hexdigest(),
                "modified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "details": {
                    "format": "gguf",
                    "family": "llama",
                    "parameter_size": "135M",
                    "quantization_level": "F16",
                },
            }
            if fake.faults.get("create_error_after_manifest"):
                error = fake.faults["create_error_after_manifest"]
            else:
                lines.append({"status": "success"})

        if r.get("stream") is False:
            if error:
                return self._error(400 if "GGUF" in error or "template" in error else 500, error)
            return self._send(200, {"status": "success"})
        self._start_stream()
        for line in lines:
            self._line(line)
        if error:
            self._line({"error": error})
        self._end_stream()

    # -- /api/show, /api/tags ------------------------------------------------------------------------------
    def _tag(self, name: str, m: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "model": name,
            "modified_at": m["modified_at"],
            "size": m["size"],
            "digest": m["digest"],
            "details": m["details"],
        }

    def _show(self, r: dict[str, Any]) -> None:
        name = r.get("model") or r.get("name")
        if not name:
            return self._error(400, "model is required")
        m = self.fake.models.get(_full(name))
        if m is None:
            return self._error(404, f"model '{name}' not found")
        return self._send(
            200,
            {
                "modelfile": f'FROM {name}\nTEMPLATE """{m["template"]}"""\n',
                "parameters": _show_parameters(m["parameters"]),
                "template": m["template"],
                "details": m["details"],
                "model_info": {"general.architecture": m["details"]["family"]},
                "capabilities": ["completion"],
                "modified_at": m["modified_at"],
            },
        )

    # -- /api/chat -----------------------------------------------------------------------------------------
    def _chat(self, r: dict[str, Any]) -> None:
        name = r.get("model")
        if not name:
            return self._error(400, "model is required")
        messages = r.get("messages") or []
        if not isinstance(messages, list) or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content", ""), str)
            for m in messages
        ):
            return self._error(
                400, "json: cannot unmarshal messages into Go struct field ChatRequest.messages"
            )
        m = self.fake.models.get(_full(name))
        if m is None:
            return self._error(404, f'model "{name}" not found, try pulling it first')
        if "embedding_dim" in m:
            return self._error(400, f'"{name}" does not support chat')
        try:
            prompt = render_go(
                m["template"], [{"role": x["role"], "content": x.get("content", "")} for x in messages]
            )
        except GoTemplateError as exc:
            return self._error(500, f"template: {exc}")
        options = r.get("options") or {}
        reply = self.fake.responder(m, prompt, messages, options)
        pieces = re.findall(r"\S+\s*|\s+", reply.text) or [""]
        final = {
            "model": name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": reply.done_reason,
            "total_duration": 1_000_000,
            "load_duration": 1000,
            "prompt_eval_count": reply.prompt_tokens,
            "prompt_eval_duration": 1000,
            "eval_count": len(pieces) if reply.text else 0,
            "eval_duration": 1000,
        }
        if r.get("stream") is False:
            final["message"]["content"] = reply.text
            return self._send(200, final)
        self._start_stream()
        fail_after = self.fake.faults.get("chat_error_after_chunks")
        for i, piece in enumerate(pieces):
            if fail_after is not None and i == fail_after:
                self._line({"error": "an error was encountered while running the model: out of memory"})
                return self._end_stream()
            self._line(
                {
                    "model": name,
                    "created_at": final["created_at"],
                    "message": {"role": "assistant", "content": piece},
                    "done": False,
                }
            )
        self._line(final)
        self._end_stream()

    # -- /api/embed ----------------------------------------------------------------------------------------
    def _embed(self, r: dict[str, Any]) -> None:
        name = r.get("model")
        if not name:
            return self._error(400, "model is required")
        m = self.fake.models.get(_full(name))
        if m is None:
            return self._error(404, f'model "{name}" not found, try pulling it first')
        inputs = r.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            return self._error(400, "invalid input type")
        dim = int(m.get("embedding_dim", 8))
        vectors = []
        for text in inputs:
            seed = hashlib.sha256(text.encode()).digest()
            vectors.append([(seed[i % 32] - 128) / 128 for i in range(dim)])
        return self._send(
            200,
            {"model": name, "embeddings": vectors, "total_duration": 1000, "prompt_eval_count": len(inputs)},
        )


class LlamaCppResponder:
    """Answers chats with llama.cpp running the uploaded GGUF: the rendered Go-template prompt, BOS per the
    GGUF, greedy, stopping at end-of-generation tokens and ``parameters.stop`` — what Ollama's runner does."""

    def __init__(self) -> None:
        self._models: dict[str, Any] = {}
        # One llama.cpp context is not thread-safe; Ollama's runner queues concurrent requests the same way.
        self._lock = threading.Lock()

    def __call__(self, model: dict[str, Any], prompt: str, messages: list, options: dict) -> Reply:
        with self._lock:
            return self._reply(model, prompt, options)

    def _reply(self, model: dict[str, Any], prompt: str, options: dict) -> Reply:
        import llama_cpp

        from bakeoff.models.llama_cpp_backend import load_llama

        fake_path = model["blob_path"]
        llm = self._models.get(fake_path)
        if llm is None:
            llm = load_llama(fake_path, n_ctx=2048, verbose=False, seed=0)
            self._models[fake_path] = llm
        tokens = llm.tokenize(prompt.encode(), add_bos=bool(llm._model.add_bos_token()), special=True)
        budget = int(options.get("num_predict") or 128)
        out: list[int] = []
        ended = False
        llm.reset()
        for tok in llm.generate(tokens, temp=0.0, reset=True):
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, tok):
                ended = True
                break
            out.append(tok)
            if len(out) >= budget:
                break
        text = llm.detokenize(out, special=True).decode("utf-8", errors="replace")
        for stop in model["parameters"].get("stop", []):
            if stop in text:
                text, ended = text.split(stop, 1)[0], True
        return Reply(text, prompt_tokens=len(tokens), done_reason="stop" if ended else "length")

    def close(self) -> None:
        for llm in self._models.values():
            llm.close()
        self._models.clear()
