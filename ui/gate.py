"""The gate in front of the whole console: an ASGI middleware that sees every request before Streamlit does.

Streamlit draws pages over a websocket and serves its own endpoints (``/_stcore/...``, media, components);
a check inside a page would run after all of them. So ``bakeoff ui`` serves the console as ``st.App`` with
this middleware (``ui/serve.py``), and a request that fails here gets a short plain-text 403 — no page, no
script bundle, no websocket.

Two checks, like Jupyter's:

- **Token** (always when the console listens beyond this machine): the first visit carries it in the URL
  (``/?token=...``, printed when the console starts); the gate then sets an HttpOnly cookie and redirects to
  the same address without it, so the token leaves the address bar. Scripts may send
  ``Authorization: token ...`` instead. ``/_stcore/health`` answers ``ok`` without it (for probes; it says
  nothing about runs).
- **Host** (when it listens on localhost only): the ``Host`` header must name this machine (``localhost``,
  ``127.0.0.1``, ``[::1]``), so a web page on another site cannot reach the console by pointing its own
  domain at 127.0.0.1 (DNS rebinding).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl, urlencode

__all__ = ["LOCAL_HOSTS", "OPEN_PATHS", "ConsoleGate", "gate_settings", "is_local_host"]

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
OPEN_PATHS = frozenset({"/_stcore/health"})

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def is_local_host(host: str) -> bool:
    """Whether ``host`` (an address to listen on, or a ``Host`` header's name) is this machine only."""
    return host.strip("[]").lower() in LOCAL_HOSTS


def _host_name(header: str) -> str:
    """The name in a ``Host`` header: ``localhost:8501`` -> ``localhost``, ``[::1]:8501`` -> ``::1``."""
    header = header.strip()
    if header.startswith("["):
        return header[1 : header.find("]")] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def gate_settings(env: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """The gate's settings from the environment ``bakeoff ui`` gives the console: ``BAKEOFF_UI_TOKEN``,
    ``BAKEOFF_UI_HOST`` (the listening address) and ``BAKEOFF_UI_PORT``. An exposed address without a token
    fails closed: every request is refused."""
    env = os.environ if env is None else env
    host = env.get("BAKEOFF_UI_HOST") or "127.0.0.1"
    return {
        "token": env.get("BAKEOFF_UI_TOKEN") or None,
        "local_only": is_local_host(host),
        "cookie": f"bakeoff-console-{env.get('BAKEOFF_UI_PORT') or 'token'}",
    }


class ConsoleGate:
    """Refuse every request without the console's token (if it has one) or with a foreign ``Host`` (if it
    listens on localhost only)."""

    def __init__(self, app: Any, *, token: str | None, local_only: bool, cookie: str = "bakeoff-console"):
        self.app = app
        self.token = token
        self.local_only = local_only
        self.cookie = cookie
        self._cookie_value = (
            hmac.new(token.encode(), b"bakeoff console cookie", hashlib.sha256).hexdigest() if token else ""
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        if self.local_only and not is_local_host(_host_name(headers.get("host", ""))):
            await self._refuse(scope, send, "This console answers only at localhost / 127.0.0.1.")
            return
        if not self.local_only and not self.token:
            await self._refuse(scope, send, "This console was started without a token; restart it.")
            return
        if self.token is None or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        from_url = [v for k, v in query if k == "token"]
        if from_url and self._same(from_url[-1], self.token):
            if scope["type"] == "http" and scope.get("method") in ("GET", "HEAD"):
                await self._redirect_without_token(scope, send, [(k, v) for k, v in query if k != "token"])
                return
            await self.app(scope, receive, send)
            return
        if self._cookie_ok(headers.get("cookie", "")) or self._header_ok(headers.get("authorization", "")):
            await self.app(scope, receive, send)
            return
        await self._refuse(
            scope,
            send,
            "This bakeoff console needs its token: open the address `bakeoff ui` printed when it started "
            "(it ends in /?token=...).",
        )

    @staticmethod
    def _same(given: str, token: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))

    def _cookie_ok(self, header: str) -> bool:
        for part in header.split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie and hmac.compare_digest(value.encode(), self._cookie_value.encode()):
                return True
        return False

    def _header_ok(self, header: str) -> bool:
        scheme, _, value = header.strip().partition(" ")
        return scheme.lower() in ("token", "bearer") and self._same(value.strip(), self.token or "")

    async def _redirect_without_token(self, scope: Scope, send: Send, rest: list[tuple[str, str]]) -> None:
        path = "/" + (scope.get("root_path", "") + scope.get("path", "/")).lstrip("/")  # never //other.host
        location = path + (f"?{urlencode(rest)}" if rest else "")
        cookie = f"{self.cookie}={self._cookie_value}; Path=/; HttpOnly; SameSite=Lax"
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode("latin-1", "replace")),
                    (b"set-cookie", cookie.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    @staticmethod
    async def _refuse(scope: Scope, send: Send, message: str) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})  # before accept: the handshake gets 403
            return
        body = (message + "\n").encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
