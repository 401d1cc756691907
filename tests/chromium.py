"""Drive a real headless Chromium through the DevTools protocol, spoken over simplews itself.

Chromium's DevTools endpoint is an independent WebSocket server, so every
test that uses this also checks our client against it. No network access:
the browser starts with background networking, updates and sync turned off.
"""

from __future__ import annotations

import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from typing import Any, Callable, Dict, List, Optional

import pytest
from helpers import wait_for

import simplews

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]
NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]


def find_chromium() -> Optional[str]:
    """The Chromium executable, or ``None``."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium() -> str:
    """The Chromium executable; skips the test, saying why, when there is none."""
    path = find_chromium()
    if path is None:
        pytest.skip(
            "Chromium is not installed and could not be: install the Debian package 'chromium' "
            "(.ci/run does so with apt-get when it runs as root)"
        )
    return path


class Page:
    """One browser tab, attached through a flat DevTools session."""

    def __init__(self, browser: Chromium, target_id: str, session_id: str) -> None:
        self.browser = browser
        self.target_id = target_id
        self.session_id = session_id

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page; return its (JSON) value, raise on a JS exception."""
        result = self.browser.call(
            "Runtime.evaluate", session_id=self.session_id, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_until(self, expression: str, timeout: float = 30) -> Any:
        """Evaluate ``expression`` until it is truthy (bounded); return the last value.

        A JavaScript error counts as false (the page may still be loading).
        """
        last: List[Any] = [None]

        def check() -> Any:
            try:
                last[0] = self.evaluate(expression)
            except AssertionError as exc:
                last[0] = exc
                return False
            return last[0]

        assert wait_for(check, timeout=timeout, interval=0.05), f"page never satisfied {expression!r}; last value {last[0]!r}"
        return last[0]


class Chromium:
    """A headless Chromium process and a DevTools connection to it (a context manager)."""

    def __init__(self, executable: str, timeout: float = 60) -> None:
        self._profile = tempfile.mkdtemp(prefix="simplews-chromium-")
        self.proc = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # one process group: every helper process can be ended together
        )
        self._stderr: List[str] = []
        self._endpoint: queue.Queue[Optional[str]] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self._ids = itertools.count(1)
        self.ws: Optional[simplews.Connection] = None
        try:
            try:
                url = self._endpoint.get(timeout=timeout)
            except queue.Empty:
                url = None
            if url is None:
                raise RuntimeError("Chromium did not start its DevTools endpoint:\n" + "".join(self._stderr[-30:]))
            self.ws = simplews.connect(url, max_message_size=None, ping_interval=None, open_timeout=timeout)
        except BaseException:
            self.close()
            raise

    def _read_stderr(self) -> None:
        """Find the DevTools URL, then keep draining stderr so that Chromium never blocks on it."""
        found = False
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)
            match = re.search(r"DevTools listening on (ws://\S+)", line)
            if match and not found:
                found = True
                self._endpoint.put(match.group(1))
        if not found:
            self._endpoint.put(None)

    def call(self, method: str, session_id: Optional[str] = None, timeout: float = 30, **params: Any) -> Dict[str, Any]:
        """Send one DevTools command and return its result (events in between are skipped)."""
        assert self.ws is not None
        command_id = next(self._ids)
        command: Dict[str, Any] = {"id": command_id, "method": method, "params": params}
        if session_id is not None:
            command["sessionId"] = session_id
        self.ws.send(json.dumps(command))
        while True:
            reply = json.loads(self.ws.recv(timeout=timeout))
            if reply.get("id") == command_id:
                if "error" in reply:
                    raise AssertionError(f"DevTools {method} failed: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> Page:
        """Open ``url`` in a new tab and attach to it."""
        target_id = self.call("Target.createTarget", url=url)["targetId"]
        session_id = self.call("Target.attachToTarget", targetId=target_id, flatten=True)["sessionId"]
        return Page(self, target_id, session_id)

    def close(self) -> None:
        """Close the browser (politely, then by force) and remove its profile."""
        if self.ws is not None:
            try:
                self.call("Browser.close", timeout=10)
            except (simplews.WebSocketError, OSError, AssertionError):
                pass
            self.ws.close()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            pass
        _kill_group(self.proc)
        self._reader.join(15)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _kill_group(proc: subprocess.Popen) -> None:
    """End what is left of Chromium's process group (renderers, zygote)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:  # pragma: no cover
        pass


def poll(predicate: Callable[[], Any], what: str, timeout: float = 30) -> None:
    """Assert that ``predicate`` becomes true within ``timeout`` (bounded)."""
    assert wait_for(predicate, timeout=timeout, interval=0.05), f"timed out waiting for {what}"
