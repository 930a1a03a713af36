"""Open report pages in headless Chromium over the DevTools protocol: collect console errors,
uncaught exceptions and every network request, evaluate a script, take a full-page screenshot.

Used by the tests and by scripts/screenshots.py (the README's images). Needs the `chromium`
binary (Debian package `chromium`, `make chromium`) and the `websockets` client.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--remote-debugging-port=0",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@dataclass
class PageVisit:
    url: str
    console_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    result: Any = None
    screenshot: Path | None = None

    @property
    def foreign_requests(self) -> list[str]:
        """Requests other than the page itself and inline `data:` URLs."""
        return [r for r in self.requests if r != self.url and not r.startswith("data:")]


class Browser:
    """One headless Chromium process; `visit()` opens each page in a fresh tab."""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 900) -> None:
        self.binary = binary or find_chromium()
        if not self.binary:
            raise RuntimeError("chromium not found (Debian: apt-get install -y chromium)")
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(prefix="segflow-chromium-")
        self._proc = subprocess.Popen(
            [
                self.binary,
                *CHROMIUM_FLAGS,
                f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._ws_url = self._wait_for_devtools()
        from websockets.sync.client import connect

        self._ws = connect(self._ws_url, max_size=None, open_timeout=30)
        self._next_id = 0

    def _wait_for_devtools(self, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        assert self._proc.stderr is not None
        while time.monotonic() < deadline:
            line = self._proc.stderr.readline()
            if not line and self._proc.poll() is not None:
                break
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match:
                return match.group(1)
        raise RuntimeError("chromium did not start its DevTools endpoint")

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        return self._next_id

    def _call(
        self, method: str, params: dict | None = None, session: str | None = None, events=None
    ) -> dict:
        call_id = self._send(method, params, session)
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            if events is not None and "method" in message:
                events.append(message)

    def visit(
        self,
        path_or_url: str | Path,
        script: str | None = None,
        screenshot: Path | None = None,
        full_page: bool = True,
    ) -> PageVisit:
        """Open a page in a fresh tab; `screenshot` is the whole page, or only the first
        window-size view with `full_page=False`."""
        url = path_or_url if "://" in str(path_or_url) else Path(path_or_url).resolve().as_uri()
        visit = PageVisit(url=str(url))
        events: list[dict] = []
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self._call(f"{domain}.enable", session=session, events=events)
        self._call(
            "Emulation.setDeviceMetricsOverride",
            {"width": self.width, "height": self.height, "deviceScaleFactor": 1, "mobile": False},
            session=session,
            events=events,
        )
        self._call("Page.navigate", {"url": visit.url}, session=session, events=events)
        deadline = time.monotonic() + 60
        while not any(e["method"] == "Page.loadEventFired" for e in events):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{visit.url} did not finish loading")
            message = json.loads(self._ws.recv(timeout=60))
            if "method" in message:
                events.append(message)
        time.sleep(0.3)  # late console messages / requests
        if script:
            evaluated = self._call(
                "Runtime.evaluate",
                {"expression": script, "returnByValue": True},
                session=session,
                events=events,
            )
            visit.result = evaluated.get("result", {}).get("value")
        if screenshot is not None:
            shot = self._call(
                "Page.captureScreenshot",
                {"format": "png", "captureBeyondViewport": full_page},
                session=session,
                events=events,
            )
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            visit.screenshot = screenshot
        for event in events:
            method, params = event["method"], event.get("params", {})
            if method == "Network.requestWillBeSent":
                visit.requests.append(params["request"]["url"])
            elif method == "Runtime.consoleAPICalled" and params.get("type") in (
                "error",
                "assert",
            ):
                visit.console_errors.append(
                    " ".join(str(a.get("value", a.get("description", ""))) for a in params["args"])
                )
            elif method == "Runtime.exceptionThrown":
                details = params["exceptionDetails"]
                visit.console_errors.append(
                    details.get("exception", {}).get("description") or details.get("text", "")
                )
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                visit.console_errors.append(params["entry"].get("text", ""))
        self._call("Target.closeTarget", {"targetId": target})
        return visit

    def close(self) -> None:
        try:
            self._ws.close()
        finally:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
            self._profile.cleanup()

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


if __name__ == "__main__":
    with Browser() as browser:
        page = browser.visit(
            sys.argv[1], screenshot=Path(sys.argv[2]) if len(sys.argv) > 2 else None
        )
    print(json.dumps({"errors": page.console_errors, "requests": page.requests}, indent=2))
