"""Models behind an OpenAI-compatible HTTP API (vLLM, llama.cpp server, ...).

``ollama:`` models use Ollama's native API instead (:mod:`bakeoff.models.ollama_backend`).

Requests go out concurrently (a server batches them itself); a failed request becomes an answer with an
``error``, never an exception that sinks the run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Sequence

from bakeoff.core import Generation, GenerationSettings, Message
from bakeoff.models.generators import BackendError, generate_concurrently

__all__ = ["OpenAICompatibleGenerator", "api_key_for", "ollama_host"]

_PLACEHOLDER_KEY = "bakeoff"  # servers that ignore keys still want an Authorization header


def _host(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname or ''}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


def api_key_for(base_url: str, key_env: str | None = None) -> str:
    """The API key to send to ``base_url``: a key from the environment goes only to the server it is for.

    ``key_env`` (``openai-compatible:URL#MODEL?key=ENV_NAME`` in a recipe) names the variable for this server.
    Without it, ``OPENAI_API_KEY`` is sent only to the host (and port) of ``OPENAI_BASE_URL`` (default
    ``https://api.openai.com/v1``), so a recipe that names another host never receives it; every other server
    gets a placeholder.
    """
    if key_env:
        return os.environ.get(key_env) or _PLACEHOLDER_KEY
    key = os.environ.get("OPENAI_API_KEY")
    configured = os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    if key and _host(base_url) == _host(configured):
        return key
    return _PLACEHOLDER_KEY


def ollama_host() -> str:
    """``OLLAMA_HOST`` as a URL (kept for callers of the old location; see :func:`bakeoff.serving.ollama.resolve_host`)."""
    from bakeoff.serving.ollama import resolve_host

    return resolve_host()


class OpenAICompatibleGenerator:
    """Chat completions against ``{base_url}/chat/completions``."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        key_env: str | None = None,
        timeout_s: float = 300.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"{self.base_url}#{model}"
        # The key is read from the environment, sent only to its own server and never written anywhere.
        self._api_key = api_key or api_key_for(self.base_url, key_env)
        self.timeout_s = timeout_s

    def _client(self):
        import httpx

        return httpx.Client(timeout=self.timeout_s, headers={"Authorization": f"Bearer {self._api_key}"})

    def _http_error(self, resp) -> str:
        # A server may echo the request (its Authorization header) in its error body: the key never leaves.
        from bakeoff.io import redact

        return f"{self.base_url} answered HTTP {resp.status_code}: {redact(resp.text, [self._api_key])[:300]}"

    def _body(self, conversation: list[Message], settings: GenerationSettings, stream: bool) -> dict:
        return {
            "model": self.model,
            "messages": conversation,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
            "stream": stream,
        }

    def _one(self, client, conversation: list[Message], settings: GenerationSettings) -> Generation:
        import httpx

        t0 = time.perf_counter()
        try:
            resp = client.post(
                f"{self.base_url}/chat/completions", json=self._body(conversation, settings, False)
            )
        except httpx.HTTPError as exc:
            return Generation("", error=f"cannot reach {self.base_url}: {exc}")
        if resp.status_code >= 400:
            return Generation("", error=self._http_error(resp))
        try:
            return Generation.from_chat_completion(resp.json(), time.perf_counter() - t0)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            return Generation("", error=f"unexpected reply from {self.base_url}: {exc}")

    def generate(
        self,
        conversations: Sequence[list[Message]],
        settings: GenerationSettings,
        progress: Callable[[int], None] | None = None,
    ) -> list[Generation]:
        with self._client() as client:
            return generate_concurrently(
                lambda c: self._one(client, c, settings), conversations, min(8, settings.batch_size), progress
            )

    def stream(self, conversation: list[Message], settings: GenerationSettings) -> Iterator[str]:
        import httpx

        try:
            with (
                self._client() as client,
                client.stream(
                    "POST", f"{self.base_url}/chat/completions", json=self._body(conversation, settings, True)
                ) as resp,
            ):
                if resp.status_code >= 400:
                    resp.read()
                    raise BackendError(self._http_error(resp))
                for line in resp.iter_lines():
                    if not line.startswith("data:"):
                        continue
                    payload = line.removeprefix("data:").strip()
                    if payload == "[DONE]":
                        break
                    delta = json.loads(payload)["choices"][0].get("delta", {}).get("content")
                    if delta:
                        yield delta
        except httpx.HTTPError as exc:
            raise BackendError(f"cannot reach {self.base_url}: {exc}") from None
