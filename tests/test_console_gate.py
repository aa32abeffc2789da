"""The console's gate (issue 17, finding 1): off localhost nothing is served without the token printed at
start — no page, no script bundle, no websocket, none of Streamlit's own endpoints; on localhost a foreign
``Host`` header is refused (DNS rebinding). Unit tests on a small ASGI app, then the real ``bakeoff ui``."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from console_server import start_console, stop_console
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from bakeoff.ui.gate import ConsoleGate, gate_settings, is_local_host

TOKEN = "s3cret-token"


async def _page(request):
    return PlainTextResponse(f"PAGE {request.url.path} {dict(request.query_params)}")


async def _stream(websocket):
    await websocket.accept()
    await websocket.send_text("hello")
    await websocket.close()


def _client(**settings) -> TestClient:
    app = Starlette(
        routes=[
            Route("/", _page),
            Route("/runs", _page),
            Route("/_stcore/health", _page),
            Route("/_stcore/host-config", _page),
            WebSocketRoute("/_stcore/stream", _stream),
        ],
        middleware=[Middleware(ConsoleGate, **settings)],
    )
    return TestClient(app, base_url="http://localhost:8501", follow_redirects=False)


def test_local_console_refuses_a_foreign_host_header():
    client = _client(token=None, local_only=True)
    for host in ("localhost:8501", "127.0.0.1:8501", "[::1]:8501", "LOCALHOST"):
        assert client.get("/runs", headers={"host": host}).text.startswith("PAGE /runs"), host
    refused = client.get("/runs", headers={"host": "attacker.example:8501"})
    assert refused.status_code == 403 and "answers only at localhost" in refused.text
    with (
        pytest.raises(WebSocketDisconnect),
        client.websocket_connect("/_stcore/stream", headers={"host": "attacker.example"}) as ws,
    ):
        ws.receive_text()
    with client.websocket_connect("/_stcore/stream", headers={"host": "localhost:8501"}) as ws:
        assert ws.receive_text() == "hello"


def test_without_the_token_nothing_but_health_is_served():
    client = _client(token=TOKEN, local_only=False, cookie="bakeoff-console-8501")
    for path in ("/", "/runs?run=r/1", "/_stcore/host-config", f"/runs?token=wrong{TOKEN}"):
        refused = client.get(path, headers={"host": "box.example:8501"})
        assert refused.status_code == 403 and "needs its token" in refused.text and "PAGE" not in refused.text
    assert client.get("/runs", headers={"authorization": "token nope"}).status_code == 403
    forged = client.get("/runs", headers={"cookie": f"bakeoff-console-8501={TOKEN}"})
    assert forged.status_code == 403  # the cookie holds a value derived from the token, not the token
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/_stcore/stream") as ws:
        ws.receive_text()
    assert client.get("/_stcore/health").text.startswith("PAGE")


def test_the_token_in_the_url_becomes_a_cookie_and_leaves_the_address():
    client = _client(token=TOKEN, local_only=False, cookie="bakeoff-console-8501")
    first = client.get(f"/runs?run=r%2F1&token={TOKEN}")
    assert first.status_code == 303 and first.headers["location"] == "/runs?run=r%2F1"
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("bakeoff-console-8501=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert TOKEN not in cookie  # the cookie is derived from the token, not the token
    page = client.get("/runs?run=r%2F1")  # the client keeps the cookie, as a browser does
    assert page.status_code == 200 and page.text == "PAGE /runs {'run': 'r/1'}"
    with client.websocket_connect("/_stcore/stream", headers={"cookie": cookie.split(";")[0]}) as ws:
        assert ws.receive_text() == "hello"
    scripted = _client(token=TOKEN, local_only=False).get("/runs", headers={"authorization": f"token {TOKEN}"})
    assert scripted.status_code == 200


def test_the_redirect_never_leads_to_another_host():
    import asyncio

    sent = []

    async def send(message):
        sent.append(message)

    async def never(*_):
        raise AssertionError("the app must not be reached")

    gate = ConsoleGate(never, token=TOKEN, local_only=False)
    scope = {"type": "http", "method": "GET", "path": "//evil.example/x", "query_string": f"token={TOKEN}".encode()}
    asyncio.run(gate(scope, None, send))
    assert sent[0]["status"] == 303 and dict(sent[0]["headers"])[b"location"] == b"/evil.example/x"


def test_an_exposed_console_without_a_token_fails_closed():
    settings = gate_settings({"BAKEOFF_UI_HOST": "0.0.0.0", "BAKEOFF_UI_PORT": "9"})
    assert settings == {"token": None, "local_only": False, "cookie": "bakeoff-console-9"}
    refused = _client(**settings).get("/runs")
    assert refused.status_code == 403 and "started without a token" in refused.text
    assert gate_settings({})["local_only"] and is_local_host("[::1]") and not is_local_host("0.0.0.0")


# --- the real console -------------------------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(urllib.request.Request(url, headers=headers), timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_exposed_console_serves_nothing_of_streamlit_without_the_token(tmp_path, bakeoff_cmd):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    write_run(tmp_path / "runs")
    proc, port, token = start_console(bakeoff_cmd, tmp_path, "--host", "0.0.0.0")
    base = f"http://127.0.0.1:{port}"
    try:
        assert token and len(token) >= 24
        status, headers, body = _get(f"{base}/?token={token}")
        assert status == 303 and headers["location"] == "/"
        cookie = headers["set-cookie"].split(";")[0]
        status, _, html = _get(f"{base}/", Cookie=cookie)
        assert status == 200 and b"<script" in html
        assets = re.findall(rb'(?:src|href)="\.?(/?static/[^"]+)"', html)
        assert assets, html[:500]
        asset = "/" + assets[0].decode().lstrip("/")
        assert _get(base + asset, Cookie=cookie)[0] == 200
        for path in ("/", "/runs", "/compare?run=gate/20260101-000000-abcd", asset, "/_stcore/host-config",
                     "/_stcore/metrics", "/media/x.png", "/_stcore/agent/openapi.json"):
            status, _, body = _get(base + path)
            assert status == 403 and b"needs its token" in body and b"<script" not in body, path
        with pytest.raises(InvalidStatus) as refused:
            connect(f"ws://127.0.0.1:{port}/_stcore/stream", open_timeout=10).close()
        assert refused.value.response.status_code == 403
        with connect(f"ws://127.0.0.1:{port}/_stcore/stream", additional_headers={"Cookie": cookie}) as ws:
            assert ws.protocol.state.name == "OPEN"
    finally:
        stop_console(proc)


def test_local_console_refuses_another_host_name(tmp_path, bakeoff_cmd):
    proc, port, token = start_console(bakeoff_cmd, tmp_path)
    try:
        assert token is None
        assert _get(f"http://127.0.0.1:{port}/")[0] == 200
        status, _, body = _get(f"http://127.0.0.1:{port}/", Host=f"rebound.example:{port}")
        assert status == 403 and b"answers only at localhost" in body
    finally:
        stop_console(proc)


def write_run(runs: Path) -> None:
    from console_fixtures import write_rich_run

    write_rich_run(runs, recipe="gate")
