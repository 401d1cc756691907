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
    # failed handshakes (what scanners cause) are DEBUG records with their reason, without a traceback
    assert "failed: this is a WebSocket endpoint" in debug  # the 426, with its reason
    assert "failed: origin 'https://evil.example' not allowed" in debug
    assert "timed out" in debug
    assert "failed" not in info and "timed out" not in info
    assert not [r for r in caplog.records if r.name == "simplews" and r.exc_info]
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


class Records(logging.Handler):
    """Keeps the records of the logger it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def app_logger() -> Any:
    """A logger of the application's, not below "simplews", that keeps its records."""
    log = logging.getLogger("deploy-test-app")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = Records()
    log.addHandler(handler)
    yield log, handler.records
    log.removeHandler(handler)


def test_logger_option_gets_every_record_of_server_and_connections(app_logger: Any, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    log, records = app_logger
    conns: list = []
    with simplews.serve(on_open=conns.append, on_message=lambda ws, m: ws.send(m), port=0, logger=log) as server:
        assert get(server.port, "/")[0] == 426  # a scanner's plain GET
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")  # a TLS hello to a plain port
            assert sock.recv(1000).startswith(b"HTTP/1.1 400")
        with simplews.connect(server.url) as ws:
            ws.send("hi")
            assert ws.recv(timeout=10) == "hi"
        assert wait_for(lambda: any("closed code=1000" in r.getMessage() and getattr(r, "websocket", None) is conns[0]
                                    for r in records), timeout=20)  # fmt: skip
    ours = [r for r in caplog.records if r.name == "simplews"]
    # the server's and its connections' records went to the given logger, only the client's to "simplews"
    assert all(getattr(r, "websocket", None) is not None and r.websocket.protocol.is_client
               for r in ours if "listening" not in r.getMessage()), [r.getMessage() for r in ours]  # fmt: skip
    text = [r.getMessage() for r in records]
    assert any(m.startswith("listening on ws://127.0.0.1:") for m in text) and "server shut down" in text
    failed = [r for r in records if "failed" in r.getMessage()]
    assert len(failed) == 2 and all(r.levelno == logging.DEBUG and r.exc_info is None for r in failed)
    server_side = [r for r in records if getattr(r, "websocket", None) is conns[0]]
    assert any("upgraded /" in r.getMessage() for r in server_side)
    assert any("message opcode=1" in r.getMessage() for r in server_side)  # the frame-level records too


def test_logger_option_of_connect_and_client(app_logger: Any, echo_server: simplews.Server) -> None:
    log, records = app_logger
    adapter = logging.LoggerAdapter(log, {"tenant": "t1"})
    with simplews.connect(echo_server.url, logger=adapter) as ws:
        ws.send("x")
        assert ws.recv(timeout=10) == "x"
    assert records and all(getattr(r, "tenant", None) == "t1" for r in records)
    assert any(r.getMessage() == f"connected to {echo_server.url}" for r in records)
    del records[:]
    got: list = []
    client = simplews.Client(echo_server.url, on_open=lambda ws: ws.send("y"), on_message=lambda ws, m: got.append(m), logger=log)
    with client:
        assert wait_for(lambda: got == ["y"], timeout=20)
    assert any(getattr(r, "websocket", None) is not None and "closed code=1000" in r.getMessage() for r in records)
