"""Two built pages opened in a real browser (headless Chromium): no console errors, figures load.

The browser is Debian's ``chromium`` (``apt-get install chromium``), driven over the DevTools
protocol with tornado's WebSocket client (tornado comes with Jupyter). Without chromium the
tests skip, saying how to install it. The pages are opened from disk with no network, so a page
that needs a CDN (MathJax, fonts) fails here as it would for an offline reader.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

PAGES = ("notebooks/01_corpus_overview.html", "notebooks/07_translation.html")


def chromium() -> str:
    """Return the chromium executable, or skip with the install command."""
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("headless browser checks need Debian's chromium: apt-get install -y chromium")
    return exe


class Browser:
    """A headless Chromium and one DevTools connection to it."""

    def __init__(self, exe: str, profile: Path):
        self.proc = subprocess.Popen(
            [exe, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--remote-debugging-port=0", f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 30
        self.ws_url = None
        while time.monotonic() < deadline and self.ws_url is None:
            line = self.proc.stderr.readline()
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                self.ws_url = m.group(1)
            elif not line and self.proc.poll() is not None:
                break
        if self.ws_url is None:
            self.close()
            raise RuntimeError("chromium did not start its DevTools endpoint")
        self.ids = itertools.count(1)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    async def open(self, url: str, settle: float = 1.5) -> dict:
        """Load *url*; return the errors the page logged and the state of its images."""
        from tornado.websocket import websocket_connect
        conn = await websocket_connect(self.ws_url, max_message_size=64 << 20)
        events: list[dict] = []

        async def call(method: str, params: dict | None = None, session: str | None = None) -> dict:
            msg_id = next(self.ids)
            msg = {"id": msg_id, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            await conn.write_message(json.dumps(msg))
            while True:
                raw = await asyncio.wait_for(conn.read_message(), timeout=60)
                if raw is None:
                    raise RuntimeError("DevTools connection closed")
                reply = json.loads(raw)
                if reply.get("id") == msg_id:
                    if "error" in reply:
                        raise RuntimeError(f"{method}: {reply['error']}")
                    return reply.get("result", {})
                events.append(reply)

        target = (await call("Target.createTarget", {"url": "about:blank"}))["targetId"]
        session = (await call("Target.attachToTarget", {"targetId": target, "flatten": True}))["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            await call(f"{domain}.enable", session=session)
        await call("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + 60
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not finish loading")
            await call("Runtime.evaluate", {"expression": "1"}, session=session)
            await asyncio.sleep(0.1)
        await asyncio.sleep(settle)     # late script errors and lazy images
        images = (await call("Runtime.evaluate", {
            "expression": "JSON.stringify(Array.from(document.images).map("
                          "i => [i.getAttribute('src'), i.complete, i.naturalWidth]))",
            "returnByValue": True}, session=session))["result"]["value"]
        await call("Target.closeTarget", {"targetId": target})
        conn.close()
        return {"errors": console_errors(events), "images": json.loads(images)}


def console_errors(events: list[dict]) -> list[str]:
    """Return the error messages among DevTools events: exceptions, console.error, failed loads."""
    out = []
    for e in events:
        method, p = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = p["exceptionDetails"]
            out.append(f"exception: {d.get('exception', {}).get('description') or d.get('text')}")
        elif method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console.error: " + " ".join(str(a.get("value", a.get("description", "")))
                                                    for a in p.get("args", [])))
        elif method == "Log.entryAdded" and p["entry"].get("level") == "error":
            out.append(f"log: {p['entry'].get('text')} {p['entry'].get('url', '')}")
        elif method == "Network.loadingFailed" and not p.get("canceled"):
            out.append(f"failed to load: {p.get('errorText')} (request {p.get('requestId')})")
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(chromium(), tmp_path_factory.mktemp("chromium-profile"))
    yield b
    b.close()


def test_console_errors_are_collected():
    events = [{"method": "Runtime.exceptionThrown",
               "params": {"exceptionDetails": {"text": "Uncaught", "exception": {"description": "TypeError: x"}}}},
              {"method": "Runtime.consoleAPICalled", "params": {"type": "log", "args": [{"value": "fine"}]}},
              {"method": "Log.entryAdded", "params": {"entry": {"level": "error", "text": "404", "url": "a.png"}}},
              {"method": "Network.loadingFailed", "params": {"errorText": "net::ERR_FILE_NOT_FOUND",
                                                             "requestId": "7"}}]
    assert console_errors(events) == ["exception: TypeError: x", "log: 404 a.png",
                                      "failed to load: net::ERR_FILE_NOT_FOUND (request 7)"]


def test_browser_sees_a_broken_page(browser, tmp_path):
    """The check can fail: a script error and a missing image are both reported."""
    page = tmp_path / "broken.html"
    page.write_text('<html><body><img src="missing.png" alt="x"><script>undefined_function()</script>'
                    "</body></html>", encoding="utf-8")
    seen = asyncio.run(browser.open(page.as_uri(), settle=0.5))
    assert any("undefined_function" in e for e in seen["errors"])
    assert seen["images"] == [["missing.png", True, 0]]


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES)
def test_built_page_loads_cleanly_in_chromium(real_book, browser, page):
    path = real_book / "html" / page
    seen = asyncio.run(browser.open(path.resolve().as_uri()))
    assert not seen["errors"], f"{page}: {seen['errors'][:5]}"
    figures = [i for i in seen["images"] if "_images/" in (i[0] or "")]
    assert figures, f"{page}: no figure images found"
    broken = [src for src, complete, width in seen["images"] if not (complete and width > 0)]
    assert not broken, f"{page}: images that did not load: {broken}"
