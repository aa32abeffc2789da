"""Headless Chromium driven over the DevTools protocol: load a console page, wait until Streamlit has drawn
what we expect, return the page's text and save a screenshot.

Streamlit draws a page over a websocket after the HTML has loaded, so ``--dump-dom`` or a virtual-time budget
sees an empty shell; the protocol lets the test poll the live page instead. Usable from a shell too::

    python tests/browser.py URL OUT.png [TEXT ...]
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--mute-audio",
    "--hide-scrollbars",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """One headless Chromium with a private profile folder, one page, spoken to over CDP."""

    def __init__(self, *, width: int = 1400, height: int = 1800, profile: Path | None = None) -> None:
        from websockets.sync.client import connect

        exe = chromium_path()
        if exe is None:
            raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
        self._tmp = None if profile else tempfile.TemporaryDirectory(prefix="bakeoff-chromium-")
        self.profile = Path(profile or self._tmp.name)
        self.proc = subprocess.Popen(
            [
                exe,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self.profile}",
                "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.time() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.time() > deadline or self.proc.poll() is not None:
                self.close()
                raise RuntimeError("chromium did not start its DevTools endpoint")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        page = next(t for t in targets if t.get("type") == "page")
        self._conn = connect(page["webSocketDebuggerUrl"], max_size=None, open_timeout=10)
        self.ws = self._conn.__enter__()
        self._id = 0
        self.call("Page.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def call(self, method: str, params: dict | None = None, timeout: float = 30) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params or {}}))
        deadline = time.time() + timeout
        while True:
            msg = json.loads(self.ws.recv(timeout=max(0.1, deadline - time.time())))
            if msg.get("id") == self._id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def text(self) -> str:
        result = self.call(
            "Runtime.evaluate", {"expression": "document.body.innerText", "returnByValue": True}
        )
        return str(result.get("result", {}).get("value") or "")

    def html(self) -> str:
        expr = "document.documentElement.outerHTML"
        result = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        return str(result.get("result", {}).get("value") or "")

    def _busy(self) -> bool:
        """Streamlit is still running the script or drawing placeholders."""
        expr = (
            "!!document.querySelector('[data-testid=\"stStatusWidget\"]') || "
            "document.querySelectorAll('[data-testid=\"stSkeleton\"]').length > 0"
        )
        return bool(
            self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})["result"].get("value")
        )

    def load(self, url: str, *, expect: list[str], timeout: float = 90, settle: float = 2.0) -> str:
        """Open ``url`` and wait until every string in ``expect`` is on the page and the page has stopped
        changing for ``settle`` seconds (Streamlit draws tables and charts after the script's text)."""
        self.call("Page.navigate", {"url": url})
        deadline = time.time() + timeout
        text, stable_since = "", None
        while time.time() < deadline:
            now = self.text()
            ready = all(s in now for s in expect) and not self._busy()
            if ready and now == text:
                stable_since = stable_since or time.time()
                if time.time() - stable_since >= settle:
                    return now
            else:
                stable_since = None
            text = now
            time.sleep(0.5)
        missing = [s for s in expect if s not in text]
        raise TimeoutError(
            f"page did not settle showing {expect} (missing {missing}) within {timeout:.0f}s:\n{text[:2000]}"
        )

    def click(self, selector: str, index: int = 0, *, wait: float = 3.0) -> None:
        """Click the ``index``-th element matching a CSS selector with real mouse events, then let the page
        redraw."""
        expr = (
            f"(() => {{ const e = document.querySelectorAll({json.dumps(selector)})[{index}];"
            " if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        point = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})["result"].get(
            "value"
        )
        if not point:
            raise LookupError(f"no element {selector!r} #{index}")
        x, y = point
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1}
            )
        time.sleep(wait)

    def click_button(self, label: str, *, wait: float = 3.0) -> None:
        """Click the button whose text is ``label`` (Streamlit buttons have no stable id)."""
        expr = (
            "(() => [...document.querySelectorAll('button')].findIndex("
            f"b => b.innerText.trim() === {json.dumps(label)}))()"
        )
        index = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})["result"].get("value")
        if index is None or index < 0:
            raise LookupError(f"no button {label!r}")
        self.click("button", index, wait=wait)

    def type_into(self, selector: str, text: str, *, enter: bool = True, wait: float = 2.0) -> None:
        """Replace the text of the input matching ``selector`` as a user would (focus, select all, type),
        then press Enter, which is when Streamlit takes a text input's new value."""
        self.click(selector, wait=0.2)
        focus = f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select(); }})()"
        self.call("Runtime.evaluate", {"expression": focus})
        self.call("Input.insertText", {"text": text})
        if enter:
            for kind in ("keyDown", "keyUp"):
                self.call(
                    "Input.dispatchKeyEvent",
                    {"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "text": "\r"},
                )
        time.sleep(wait)

    def wait_for(self, text: str, *, timeout: float = 60) -> str:
        """Wait until ``text`` is on the page (and Streamlit is idle); return the page's text."""
        deadline = time.time() + timeout
        now = ""
        while time.time() < deadline:
            now = self.text()
            if text in now and not self._busy():
                return now
            time.sleep(0.3)
        raise TimeoutError(f"{text!r} did not appear within {timeout:.0f}s:\n{now[:2000]}")

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        conn = getattr(self, "_conn", None)
        if conn is not None:
            conn.__exit__(None, None, None)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


if __name__ == "__main__":
    url, out, *expect = sys.argv[1:]
    with Browser() as browser:
        print(browser.load(url, expect=expect)[:3000])
        print(browser.screenshot(Path(out)))
