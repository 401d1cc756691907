"""Point 8: what the server logs on logging.getLogger("simplews"), and that nothing is printed by default."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from helpers import wait_for
from server_raw import get

import simplews


def messages(caplog: Any, level: int) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "simplews" and r.levelno == level)


def test_accept_handshake_failure_and_close_are_logged(server_factory: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    server = server_factory(on_message=lambda ws, m: ws.close(4000, "done"), origins=["https://ok.example"],
                            handshake_timeout=0.3)
    assert get(server.port, "/")[0] == 426
    with pytest.raises(simplews.InvalidStatus):
        simplews.connect(server.url, origin="https://evil.example")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(10) == b""  # silent client dropped at the handshake timeout
    with simplews.connect(server.url, origin="https://ok.example") as ws:
        ws.send("close please")
        with pytest.raises(simplews.ConnectionClosed):
            ws.recv(timeout=10)
    assert wait_for(lambda: "code=4000" in messages(caplog, logging.INFO), timeout=20)
    debug, info = messages(caplog, logging.DEBUG), messages(caplog, logging.INFO)
    assert "accepted ('127.0.0.1'" in debug
    assert "failed: this is a WebSocket endpoint" in info  # the 426, with its reason
    assert "failed: origin 'https://evil.example' not allowed" in info
    assert "timed out" in info
    assert "upgraded /" in info and "closed code=4000 reason='done'" in info


def test_too_slow_and_busy_are_logged(server_factory: Any, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="simplews")
    server = server_factory(max_connections=1)
    with simplews.connect(server.url):
        with pytest.raises(simplews.InvalidStatus):
            simplews.connect(server.url)
    assert "max_connections reached" in messages(caplog, logging.INFO)


QUIET_SCRIPT = textwrap.dedent(
    """
    import socket, simplews

    def on_message(ws, message):
        raise RuntimeError("a bug in a callback")

    with simplews.serve(on_message=on_message, port=0, max_connections=1,
                        process_request=lambda r: 1 / 0 if r.path == "/boom" else None) as server:
        with simplews.connect(server.url) as ws:
            ws.send("trigger")
            ws.ping().wait(5)
            try:
                simplews.connect(server.url)  # 503
            except simplews.InvalidStatus:
                pass
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET /boom HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            sock.recv(1000)
    """
)


def test_nothing_is_printed_by_default() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", QUIET_SCRIPT], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == ""
