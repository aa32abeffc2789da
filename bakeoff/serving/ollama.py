"""Talking to an Ollama server: the official ``ollama`` client plus the few calls it lacks.

The host comes from (in order) an explicit ``--host`` / the recipe's ``ollama_host``, ``OLLAMA_HOST``, or
``http://127.0.0.1:11434``. Every failure becomes an :class:`OllamaError` whose message is one sentence that
names the host (and model) and says what to do — never a traceback:

* unreachable → start Ollama or point ``OLLAMA_HOST`` at it;
* model missing (HTTP 404) → ``ollama pull`` it or check ``bakeoff models list``;
* an old server → what it cannot do and which version can;
* anything else → the server's own error text, with the HTTP status, or "while streaming" when it arrived as an
  ``{"error": ...}`` line after an HTTP 200 (how Ollama reports failures that happen after streaming started).

``ollama-python`` 0.6 has no ``version()`` and uploads blobs without checking first, so ``GET /api/version``,
``HEAD /api/blobs/…`` and the blob upload go through ``httpx`` directly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from bakeoff.errors import BakeoffError

__all__ = [
    "DEFAULT_HOST",
    "MIN_CREATE_VERSION",
    "OllamaError",
    "OllamaModelMissing",
    "OllamaServer",
    "OllamaUnreachable",
    "OllamaVersionError",
    "full_name",
    "parse_version",
    "resolve_host",
]

DEFAULT_HOST = "http://127.0.0.1:11434"
# /api/create with structured fields (`files`, `template`, `parameters`) exists from 0.5.5; before it, create
# took only a Modelfile text.
MIN_CREATE_VERSION = (0, 5, 5)


class OllamaError(BakeoffError):
    """An Ollama call failed; the message is one sentence naming the host and what to do."""


class OllamaUnreachable(OllamaError):
    """Nothing answers at the Ollama host."""


class OllamaModelMissing(OllamaError):
    """The server has no model of that name."""


class OllamaVersionError(OllamaError):
    """The server is too old for what was asked."""


def resolve_host(explicit: str | None = None) -> str:
    """The Ollama base URL: ``explicit``, else ``OLLAMA_HOST``, else the default.

    Normalised the way ollama-python does it: ``host`` → ``http://host:11434``, ``:5000`` →
    ``http://127.0.0.1:5000``, a URL without a port gets its scheme's default port.
    """
    raw = (explicit or "").strip() or os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_HOST
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "http", raw
    default_port = {"http": 80, "https": 443}.get(scheme, 11434) if sep else 11434
    hostport, _, path = rest.partition("/")
    if hostport.startswith(":"):
        hostport = "127.0.0.1" + hostport
    if not re.search(r":\d+$", hostport) or hostport.endswith("]"):
        hostport = f"{hostport}:{default_port}"
    path = path.strip("/")
    return f"{scheme}://{hostport}" + (f"/{path}" if path else "")


def parse_version(text: str) -> tuple[int, int, int]:
    """``"0.12.3"`` / ``"0.5.5-rc1"`` → ``(0, 12, 3)``; unparseable → ``(0, 0, 0)``."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", text or "")
    if not m:
        return (0, 0, 0)
    return (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def full_name(name: str) -> str:
    """Ollama's canonical model name: a missing tag means ``:latest``."""
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class OllamaServer:
    """One Ollama server.

    Args:
        host: base URL or ``host:port``; ``None`` reads ``OLLAMA_HOST``.
        timeout_s: per-request timeout (generation and uploads can be slow).
    """

    def __init__(self, host: str | None = None, *, timeout_s: float = 600.0) -> None:
        import httpx
        import ollama

        self.host = resolve_host(host)
        self.client = ollama.Client(host=self.host, timeout=timeout_s)
        self._http = httpx.Client(base_url=self.host, timeout=timeout_s)
        self._version: str | None = None

    def close(self) -> None:
        self._http.close()
        self.client.close()

    def __enter__(self) -> OllamaServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- errors --------------------------------------------------------------------------------------------
    def unreachable(self, detail: object = "") -> OllamaUnreachable:
        why = f" ({detail})" if detail else ""
        return OllamaUnreachable(
            f"cannot reach Ollama at {self.host}{why}: start it with `ollama serve`, or point OLLAMA_HOST "
            "(or the recipe's `ollama_host`, or --host) at a running server"
        )

    def translate(self, exc: BaseException, *, action: str, model: str | None = None) -> OllamaError:
        """Turn a client/transport exception into an :class:`OllamaError` with one clear sentence."""
        import httpx
        import ollama

        if isinstance(exc, OllamaError):
            return exc
        if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            return self.unreachable()
        if isinstance(exc, httpx.TimeoutException):
            return OllamaError(f"Ollama at {self.host} did not answer in time while trying to {action}")
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code == 404 and model:
                return OllamaModelMissing(
                    f"Ollama at {self.host} has no model {model!r}: pull it with `ollama pull {model}` "
                    "(or register it with `bakeoff models register`) and check the name with `bakeoff models list`"
                )
            if exc.status_code == -1:
                return OllamaError(f"Ollama at {self.host} failed to {action} while streaming: {exc.error}")
            return OllamaError(
                f"Ollama at {self.host} refused to {action}: {exc.error} (HTTP {exc.status_code})"
            )
        if isinstance(exc, httpx.HTTPError):
            return OllamaError(f"talking to Ollama at {self.host} failed while trying to {action}: {exc}")
        return OllamaError(f"Ollama at {self.host}: {action} failed: {type(exc).__name__}: {exc}")

    def _call(self, action: str, fn: Callable[[], Any], model: str | None = None) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every failure becomes one clear OllamaError
            raise self.translate(exc, action=action, model=model) from None

    def _check(self, resp: Any, action: str, model: str | None = None) -> Any:
        if resp.status_code < 400:
            return resp
        import ollama

        raise self.translate(ollama.ResponseError(resp.text, resp.status_code), action=action, model=model)

    # -- server --------------------------------------------------------------------------------------------
    def version(self) -> str:
        """The server's version (``GET /api/version``)."""
        if self._version is None:
            resp = self._call("read its version", lambda: self._http.get("/api/version"))
            if resp.status_code == 404:
                raise OllamaVersionError(
                    f"Ollama at {self.host} has no /api/version, so it predates everything bakeoff needs; "
                    f"upgrade Ollama to {'.'.join(map(str, MIN_CREATE_VERSION))} or newer"
                )
            self._check(resp, "read its version")
            try:
                self._version = str(resp.json()["version"])
            except (ValueError, KeyError, TypeError):
                raise OllamaError(
                    f"{self.host} answered /api/version with something that is not Ollama's reply; is OLLAMA_HOST "
                    "pointing at an Ollama server?"
                ) from None
        return self._version

    def require_create(self) -> str:
        """Check that the server can create models from GGUF files with an explicit template.

        Raises:
            OllamaVersionError: the server is older than 0.5.5.
        """
        version = self.version()
        if parse_version(version) < MIN_CREATE_VERSION:
            raise OllamaVersionError(
                f"Ollama at {self.host} is version {version}: its /api/create takes only a Modelfile, so bakeoff "
                "cannot upload a GGUF with an explicit template and stop parameters there; upgrade Ollama to "
                f"{'.'.join(map(str, MIN_CREATE_VERSION))} or newer (or run `bakeoff models register --dry-run` "
                "and import the GGUF by hand with a Modelfile)"
            )
        return version

    # -- blobs ---------------------------------------------------------------------------------------------
    def has_blob(self, digest: str) -> bool:
        """``HEAD /api/blobs/<digest>``: 200 → present, 404 → missing."""
        resp = self._call("check a blob", lambda: self._http.head(f"/api/blobs/{digest}"))
        if resp.status_code == 404:
            return False
        self._check(resp, f"check blob {digest}")
        return True

    def push_blob(self, path: Path, digest: str, progress: Callable[[int], None] | None = None) -> None:
        """Upload a file as a blob (``POST /api/blobs/<digest>``); the server checks the digest."""

        def chunks() -> Iterator[bytes]:
            with open(path, "rb") as fh:
                while block := fh.read(1 << 20):
                    if progress:
                        progress(len(block))
                    yield block

        resp = self._call(
            f"upload {path.name}",
            lambda: self._http.post(
                f"/api/blobs/{digest}",
                content=chunks(),
                headers={"Content-Length": str(path.stat().st_size)},
            ),
        )
        self._check(resp, f"store blob {digest} ({path.name})")

    # -- models --------------------------------------------------------------------------------------------
    def create(
        self,
        name: str,
        *,
        files: Mapping[str, str],
        template: str | None = None,
        parameters: Mapping[str, Any] | None = None,
        system: str | None = None,
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        """``POST /api/create`` (streamed); an ``{"error": …}`` line after HTTP 200 raises like an HTTP error."""

        def run() -> None:
            for part in self.client.create(
                model=name,
                files=dict(files),
                template=template,
                parameters=dict(parameters) if parameters else None,
                system=system,
                stream=True,
            ):
                if on_status and part.status:
                    on_status(part.status)

        self._call(f"create model {name!r}", run)

    def show(self, name: str) -> Any:
        """``POST /api/show`` → ``ollama.ShowResponse`` (template, parameters, details, capabilities)."""
        return self._call(f"show model {name!r}", lambda: self.client.show(name), model=name)

    def exists(self, name: str) -> bool:
        try:
            self.show(name)
        except OllamaModelMissing:
            return False
        return True

    def delete(self, name: str) -> None:
        """``DELETE /api/delete``; a missing model raises :class:`OllamaModelMissing`."""
        self._call(f"delete model {name!r}", lambda: self.client.delete(name), model=name)

    def list(self) -> list[dict[str, Any]]:
        """``GET /api/tags`` as plain dicts (name, size, digest, modified_at, details)."""
        resp = self._call("list models", lambda: self.client.list())
        out = []
        for m in resp.models:
            d = m.model_dump()
            d["name"] = d.get("model")
            details = d.get("details") or {}
            d["family"] = details.get("family")
            d["quantization"] = details.get("quantization_level")
            d["parameter_size"] = details.get("parameter_size")
            out.append(d)
        return out

    def chat(
        self,
        model: str,
        messages: Sequence[Mapping[str, str]],
        *,
        options: Mapping[str, Any] | None = None,
        stream: bool = False,
    ) -> Any:
        """``POST /api/chat``; with ``stream=True`` an iterator of chunks (errors raise as they arrive)."""
        if not stream:
            return self._call(
                f"chat with {model!r}",
                lambda: self.client.chat(model=model, messages=list(messages), options=dict(options or {})),
                model=model,
            )

        def chunks() -> Iterator[Any]:
            try:
                yield from self.client.chat(
                    model=model, messages=list(messages), options=dict(options or {}), stream=True
                )
            except Exception as exc:  # noqa: BLE001
                raise self.translate(exc, action=f"chat with {model!r}", model=model) from None

        return chunks()

    def embed(self, model: str, texts: Sequence[str]) -> list[list[float]]:
        """``POST /api/embed``."""
        resp = self._call(
            f"embed with {model!r}", lambda: self.client.embed(model=model, input=list(texts)), model=model
        )
        return [list(v) for v in resp.embeddings]
