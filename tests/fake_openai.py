"""A small OpenAI-compatible chat server on 127.0.0.1 for tests: it checks the bearer key and answers
deterministically ("echo: <last user message>"), streaming with SSE when asked.

``failures``: HTTP statuses answered, one per request and in order, before it answers normally (a flaky or
rate-limited server); ``attempts`` counts every chat request that reached it, failed ones included."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeOpenAI:
    def __init__(self, api_key: str | None = None, failures: list[int] | None = None) -> None:
        self.api_key = api_key
        self.requests: list[dict] = []
        self.failures = list(failures or [])
        self.attempts = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                try:
                    body = json.loads(self.rfile.read(length))
                except json.JSONDecodeError:
                    return self._send(400, {"error": {"message": "invalid JSON"}})
                if server.api_key and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    return self._send(401, {"error": {"message": "bad key"}})
                if self.path != "/v1/chat/completions" or "messages" not in body or "model" not in body:
                    return self._send(
                        404 if self.path != "/v1/chat/completions" else 400,
                        {"error": {"message": "bad request"}},
                    )
                with server.lock:
                    server.attempts += 1
                    status = server.failures.pop(0) if server.failures else None
                if status is not None:
                    return self._send(status, {"error": {"message": f"scripted failure {status}"}})
                server.requests.append(body)
                text = "echo: " + body["messages"][-1]["content"]
                if body.get("stream"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for word in text.split(" "):
                        chunk = {"choices": [{"delta": {"content": word + " "}, "index": 0}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.write(b"data: [DONE]\n\n")
                    return None
                return self._send(
                    200,
                    {
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 7, "completion_tokens": len(text.split())},
                    },
                )

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
