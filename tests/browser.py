"""A real headless Chromium driven over the Chrome DevTools protocol (websocket-client).

Used by tests/test_interactive.py to open the interactive pages from file (no server, no network),
collect console errors and exceptions, evaluate JavaScript, send mouse events and take screenshots.
The browser is Debian's ``chromium`` (``.ci/run`` installs it); a missing browser fails the tests.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")


def chromium_path() -> str:
    """The browser executable ($XTAL_CHROMIUM or the first on PATH); AssertionError when none."""
    env = os.environ.get("XTAL_CHROMIUM")
    if env:
        return env
    for name in CHROMIUM_CANDIDATES:
        p = shutil.which(name)
        if p:
            return p
    raise AssertionError("no Chromium found: install it (apt-get install -y chromium) or set XTAL_CHROMIUM")


class Chromium:
    """One headless browser with one page; ``open(path)`` loads a file and records console errors."""

    def __init__(self, width: int = 1280, height: int = 1000):
        import websocket

        self.profile = tempfile.mkdtemp(prefix="xtal-chromium-")
        self.proc = subprocess.Popen(
            [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-extensions", "--remote-debugging-port=0", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        port = None
        for line in self.proc.stderr:                       # "DevTools listening on ws://…:PORT/…"
            m = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        if port is None:
            self.close()
            raise AssertionError("Chromium did not start a DevTools endpoint")
        for _ in range(100):
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            pages = [t for t in targets if t.get("type") == "page"]
            if pages:
                break
            time.sleep(0.1)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=60,
                                              suppress_origin=True)
        self._id = 0
        self.console_errors: list[str] = []
        self.remote_requests: list[str] = []
        self.events: list[dict] = []
        self.send("Network.enable")
        self.send("Network.emulateNetworkConditions", offline=True, latency=0,
                  downloadThroughput=-1, uploadThroughput=-1)
        self.send("Runtime.enable")
        self.send("Page.enable")
        self.send("Log.enable")

    # --- protocol -----------------------------------------------------------------------------
    def _record(self, msg: dict) -> None:
        m = msg.get("method")
        p = msg.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            self.console_errors.append(" ".join(str(a.get("value", a.get("description", "")))
                                                for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            self.console_errors.append(d.get("exception", {}).get("description") or d.get("text", ""))
        elif m == "Network.requestWillBeSent":
            url = p.get("request", {}).get("url", "")
            if not url.startswith(("file:", "data:", "about:", "blob:")):
                self.remote_requests.append(url)
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            self.console_errors.append(p["entry"].get("text", ""))
        self.events.append(msg)

    def send(self, method: str, **params) -> dict:
        self._id += 1
        my = self._id
        self.ws.send(json.dumps({"id": my, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == my:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._record(msg)

    def wait_event(self, method: str, timeout: float = 60.0) -> dict:
        for i, msg in enumerate(self.events):
            if msg.get("method") == method:
                return self.events.pop(i)
        self.ws.settimeout(timeout)
        while True:
            msg = json.loads(self.ws.recv())
            self._record(msg)
            if msg.get("method") == method:
                return msg

    # --- convenience --------------------------------------------------------------------------
    def open(self, path: str | Path) -> None:
        """Load a local file and wait for its load event and for plotly to have drawn."""
        self.events.clear()
        self.console_errors.clear()
        self.remote_requests.clear()
        self.send("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        self.eval("new Promise(r => { const t0 = Date.now(); (function w() {"
                  " const g = document.querySelectorAll('.js-plotly-plot');"
                  " if (g.length && [...g].every(e => e._fullLayout)) r(true);"
                  " else if (Date.now() - t0 > 30000) r(false); else setTimeout(w, 50); })(); })")

    def eval(self, expression: str):
        r = self.send("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True)
        if "exceptionDetails" in r:
            raise AssertionError(f"JavaScript error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def mouse_move(self, x: float, y: float) -> None:
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=float(x), y=float(y))

    def drag(self, x0: float, y0: float, x1: float, y1: float) -> None:
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=float(x0), y=float(y0))
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=float(x0), y=float(y0),
                  button="left", clickCount=1)
        for k in range(1, 11):
            self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x0 + (x1 - x0) * k / 10,
                      y=y0 + (y1 - y0) * k / 10, button="left", buttons=1)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=float(x1), y=float(y1),
                  button="left", clickCount=1)

    def screenshot(self, path: str | Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        p = Path(path)
        p.write_bytes(base64.b64decode(data))
        return p

    def close(self) -> None:
        try:
            if getattr(self, "ws", None) is not None:
                self.ws.close()
        finally:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            shutil.rmtree(self.profile, ignore_errors=True)
