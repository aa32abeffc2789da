"""Models behind an OpenAI-compatible HTTP API (vLLM, llama.cpp server, LM Studio, ...), through the official
``openai`` client — the one client bakeoff speaks that protocol with, for answering and judging alike.

``ollama:`` models answer through Ollama's native API (:mod:`bakeoff.models.ollama_backend`); an Ollama judge
goes through its ``/v1`` with :func:`openai_client` too.

:func:`openai_client` / :func:`async_openai_client` build the clients: a read timeout per request (and a short
connect timeout, so a wrong address fails fast), and retries with exponential backoff and jitter on HTTP 408,
409, 429 and 5xx, on connection errors and on timeouts — the ``openai`` package's own retry loop, which also
honours a server's ``Retry-After``. Requests go out concurrently (a server batches them itself); a request
that still fails becomes an answer with an ``error``, never an exception that sinks the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from bakeoff.core import Generation, GenerationSettings, Message
from bakeoff.models.generators import BackendError, generate_concurrently

__all__ = [
    "CONNECT_TIMEOUT_S",
    "DEFAULT_RETRIES",
    "OpenAICompatibleGenerator",
    "api_key_for",
    "async_openai_client",
    "describe_error",
    "ollama_host",
    "openai_client",
]

DEFAULT_RETRIES = 3  # after the first try: waits of about 0.5, 1 and 2 s (openai's backoff, capped at 8 s)
CONNECT_TIMEOUT_S = 10.0
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


def _client_args(
    base_url: str, api_key: str | None, key_env: str | None, timeout_s: float, max_retries: int
) -> dict[str, Any]:
    import openai

    return {
        "base_url": base_url,
        # The key is read from the environment, sent only to its own server and never written anywhere.
        "api_key": api_key or api_key_for(base_url, key_env),
        "timeout": openai.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s)),
        "max_retries": max_retries,
    }


def openai_client(
    base_url: str,
    *,
    api_key: str | None = None,
    key_env: str | None = None,
    timeout_s: float = 300.0,
    max_retries: int = DEFAULT_RETRIES,
    http_client: Any = None,
):
    """An ``openai.OpenAI`` client for ``base_url`` with bakeoff's timeouts and retries (module docstring).

    Args:
        base_url: the server's API root, e.g. ``http://127.0.0.1:8000/v1``.
        api_key: default :func:`api_key_for` (``OPENAI_API_KEY`` only for its own host, else a placeholder).
        key_env: the environment variable holding this server's key (``?key=ENV`` in a model reference).
        timeout_s: seconds to wait for one reply (per try).
        max_retries: tries after the first on 408/409/429/5xx, connection errors and timeouts.
        http_client: an ``httpx.Client`` to send through (e.g. one with event hooks that count requests).
    """
    import openai

    return openai.OpenAI(
        **_client_args(base_url, api_key, key_env, timeout_s, max_retries), http_client=http_client
    )


def async_openai_client(
    base_url: str,
    *,
    api_key: str | None = None,
    key_env: str | None = None,
    timeout_s: float = 300.0,
    max_retries: int = DEFAULT_RETRIES,
    http_client: Any = None,
):
    """:func:`openai_client` as an ``openai.AsyncOpenAI`` (``http_client``: an ``httpx.AsyncClient``)."""
    import openai

    return openai.AsyncOpenAI(
        **_client_args(base_url, api_key, key_env, timeout_s, max_retries), http_client=http_client
    )


def describe_error(exc: BaseException, base_url: str, secrets: Sequence[str] = ()) -> str | None:
    """One line for an ``openai`` error (after its retries), or None when ``exc`` is not one. A server may echo
    the request (its Authorization header) in its error body: ``secrets`` and anything shaped like a key are
    redacted, so the key never reaches a run file."""
    import openai

    from bakeoff.io import redact

    if isinstance(exc, openai.APIStatusError):
        body = exc.body  # the reply's `error` object when it has one
        message = body.get("message") if isinstance(body, dict) else None
        detail = " ".join(str(message if isinstance(message, str) else exc.response.text).split())[:300]
        return f"{base_url} answered HTTP {exc.status_code}: {redact(detail, [k for k in secrets if k != _PLACEHOLDER_KEY])}"
    if isinstance(exc, openai.APITimeoutError):
        return f"cannot reach {base_url}: no reply within the timeout"
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        return f"cannot reach {base_url}: {type(cause).__name__}: {cause}"
    return None


class OpenAICompatibleGenerator:
    """Chat completions against ``{base_url}/chat/completions``.

    Args:
        base_url: the server's API root.
        model: the model name the server knows.
        api_key: default :func:`api_key_for` (``OPENAI_API_KEY`` only for its own host).
        key_env: the environment variable holding this server's key.
        timeout_s: seconds to wait for one reply.
        max_retries: retries on 429/5xx/connection errors (see :func:`openai_client`).
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        key_env: str | None = None,
        timeout_s: float = 300.0,
        max_retries: int = DEFAULT_RETRIES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = f"{self.base_url}#{model}"
        self._api_key = api_key or api_key_for(self.base_url, key_env)
        self.timeout_s = timeout_s
        self.max_retries = max_retries

    def _client(self):
        return openai_client(
            self.base_url, api_key=self._api_key, timeout_s=self.timeout_s, max_retries=self.max_retries
        )

    def _request(self, conversation: list[Message], settings: GenerationSettings) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": conversation,
            "max_tokens": settings.max_new_tokens,
            "temperature": settings.temperature,
            "top_p": settings.top_p,
            "seed": settings.seed,
        }

    def _one(self, client, conversation: list[Message], settings: GenerationSettings) -> Generation:
        import openai

        t0 = time.perf_counter()
        try:
            reply = client.chat.completions.create(**self._request(conversation, settings))
        except openai.OpenAIError as exc:
            return Generation("", error=describe_error(exc, self.base_url, [self._api_key]) or f"{self.base_url}: {exc}")
        try:
            return Generation.from_chat_completion(reply.model_dump(), time.perf_counter() - t0)
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
        """The reply's text as it arrives.

        Raises:
            BackendError: the server cannot be reached or answers with an error (after the retries).
        """
        import openai

        try:
            with self._client() as client:
                chunks = client.chat.completions.create(**self._request(conversation, settings), stream=True)
                for chunk in chunks:
                    delta = chunk.choices[0].delta.content if chunk.choices else None
                    if delta:
                        yield delta
        except openai.OpenAIError as exc:
            raise BackendError(describe_error(exc, self.base_url, [self._api_key]) or f"{self.base_url}: {exc}") from None
