"""A real headless Chromium, driven over the DevTools protocol through a pipe (`--remote-debugging-pipe`: fd 3
carries commands in, fd 4 answers and events out, each message JSON ended by a NUL byte) — Puppeteer's own
transport, so no port, no DevToolsActivePort file and no websocket client are needed.

For the HTML report's browser test and tools/screenshot_report.py: open a page, record every console message,
exception and network request, evaluate expressions, take screenshots.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import Any

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    """The browser binary: $EDGECHECK_CHROMIUM, else the first of the usual names on PATH."""
    chosen = os.environ.get("EDGECHECK_CHROMIUM")
    if chosen:
        return chosen if Path(chosen).exists() else None
    return next((found for name in NAMES if (found := shutil.which(name))), None)


class Chromium:
    """One headless browser and one page in it. Events of the page are kept in `events` as (method, params)."""

    def __init__(self, binary: str, width: int = 1280, height: int = 900, timeout: float = 60.0):
        self.timeout = timeout
        self.profile = tempfile.TemporaryDirectory(prefix="edgecheck-chromium-")
        commands_read, self._commands = os.pipe()  # we write commands; the browser reads its fd 3
        self._answers, answers_write = os.pipe()  # the browser writes its fd 4; we read
        args = [binary, "--headless", "--remote-debugging-pipe", f"--user-data-dir={self.profile.name}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-sync", "--disable-component-update",
                "--disable-default-apps", "--mute-audio", f"--window-size={width},{height}", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox

        def as_fds_3_and_4() -> None:
            high_in, high_out = os.dup(commands_read), os.dup(answers_write)  # out of the way of 3 and 4 first
            os.dup2(high_in, 3)
            os.dup2(high_out, 4)
            os.set_inheritable(3, True)  # a dup2 onto itself (the copy landed on 3 or 4) keeps close-on-exec
            os.set_inheritable(4, True)

        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, preexec_fn=as_fds_3_and_4, close_fds=False)
        os.close(commands_read)
        os.close(answers_write)
        self._next_id = 0
        self._answers_queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._stderr: list[bytes] = []
        threading.Thread(target=lambda: self._stderr.append(self.process.stderr.read()), daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable", session=True)

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._answers, "rb", buffering=0) as stream:
            while True:
                chunk = stream.read(65536)
                if not chunk:
                    self._answers_queue.put(None)
                    return
                buffer += chunk
                while b"\0" in buffer:
                    message, buffer = buffer.split(b"\0", 1)
                    self._answers_queue.put(json.loads(message))

    def call(self, method: str, session: bool = False, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its answer; events that arrive meanwhile go to `events`."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        try:
            os.write(self._commands, json.dumps(message).encode() + b"\0")
        except BrokenPipeError:
            self.process.wait(timeout=10)
            raise RuntimeError(f"Chromium exited ({self.process.returncode}): "
                               + b"".join(self._stderr).decode(errors="replace")[-2000:]) from None
        while True:
            answer = self._take()
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise RuntimeError(f"{method}: {answer['error']}")
                return answer.get("result", {})

    def _take(self) -> dict[str, Any]:
        try:
            answer = self._answers_queue.get(timeout=self.timeout)
        except queue.Empty:
            raise TimeoutError(f"Chromium said nothing for {self.timeout:.0f} s") from None
        if answer is None:
            raise RuntimeError("Chromium closed its pipe: " + b"".join(self._stderr).decode(errors="replace")[-2000:])
        if "method" in answer:
            self.events.append((answer["method"], answer.get("params", {})))
        return answer

    def _count(self, event: str) -> int:
        return sum(1 for method, _ in self.events if method == event)

    def open(self, url: str) -> None:
        """Navigate and wait until the page has loaded."""
        before = self._count("Page.loadEventFired")
        self.call("Page.navigate", session=True, url=url)
        while self._count("Page.loadEventFired") == before:
            self._take()

    def evaluate(self, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in answer:
            raise RuntimeError(f"{expression}: {answer['exceptionDetails']}")
        return answer["result"].get("value")

    def resize(self, width: int, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path, full_page: bool = False) -> None:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            width, height = self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
            params["clip"] = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path.write_bytes(base64.b64decode(data))

    def problems(self) -> list[str]:
        """Every console error or warning, uncaught exception and log entry of level error or warning."""
        return self.problems_of(self.events)

    @staticmethod
    def problems_of(events: list[tuple[str, dict[str, Any]]]) -> list[str]:
        found = []
        for method, params in events:
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "warning", "assert"):
                found.append(f"console.{params['type']}: {[a.get('value', a.get('description')) for a in params['args']]}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails']}")
            elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
                found.append(f"log {params['entry']['level']}: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        return found

    def requests(self) -> list[str]:
        return [params["request"]["url"] for method, params in self.events if method == "Network.requestWillBeSent"]

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._commands)
        self.profile.cleanup()

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
