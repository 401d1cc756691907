"""Nothing lost: every message send() returned for before a normal close arrives, in order."""

from __future__ import annotations

import threading
from typing import Any, List

import pytest
from helpers import wait_for

import simplews

COUNT = 100_000


@pytest.mark.timeout(300)
def test_client_to_server_every_message_arrives(server_factory: Any) -> None:
    received: List[int] = []
    closed: List[int] = []
    done = threading.Event()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        received.append(int(message))

    def on_close(ws: simplews.Connection, code: int, reason: str) -> None:
        closed.append(code)
        done.set()

    server = server_factory(on_message=on_message, on_close=on_close)
    ws = simplews.connect(server.url, close_timeout=120)
    for i in range(COUNT):
        ws.send(str(i))
    ws.close()
    assert ws.close_code == 1000
    assert done.wait(60) and closed == [1000]
    assert len(received) == COUNT and received == list(range(COUNT))


@pytest.mark.timeout(300)
def test_server_to_client_every_message_arrives(server_factory: Any) -> None:
    def handler(ws: simplews.Connection) -> None:
        for i in range(COUNT):
            ws.send(str(i))
        ws.close()

    server = server_factory(handler, close_timeout=120)
    received: List[int] = []
    with simplews.connect(server.url) as ws:
        for message in ws:  # ends on the server's normal close
            received.append(int(message))
    assert ws.close_code == 1000
    assert len(received) == COUNT and received == list(range(COUNT))
    assert wait_for(lambda: not server.connections, 10)


@pytest.mark.timeout(300)
def test_our_client_to_an_independent_server_loses_nothing() -> None:
    from websockets.sync.server import serve as ws_serve

    counts: List[int] = []

    def count(ws: Any) -> None:
        n = 0
        for message in ws:  # ends on our normal close
            assert message == str(n)
            n += 1
        counts.append(n)

    server = ws_serve(count, "127.0.0.1", 0, compression=None)
    thread = threading.Thread(target=server.serve_forever, name="test-websockets-server")
    thread.start()
    try:
        ws = simplews.connect(f"ws://127.0.0.1:{server.socket.getsockname()[1]}/", close_timeout=120)
        for i in range(COUNT):
            ws.send(str(i))
        ws.close()
        assert ws.close_code == 1000
        assert wait_for(lambda: counts, 60) and counts == [COUNT]
    finally:
        server.shutdown()
        thread.join(30)


@pytest.mark.timeout(300)
def test_independent_client_to_our_server_loses_nothing(server_factory: Any) -> None:
    from websockets.sync.client import connect as ws_connect

    received: List[int] = []
    closed: List[int] = []
    server = server_factory(on_message=lambda ws, m: received.append(int(m)), on_close=lambda ws, c, r: closed.append(c))
    # ping_interval=None: websockets' keepalive thread and close() both join its reader thread,
    # a race PyPy 3.9's Thread.join loses (see tests/deflate/test_deflate_interop.py)
    with ws_connect(server.url, compression=None, close_timeout=120, ping_interval=None) as ws:
        for i in range(COUNT):
            ws.send(str(i))
    assert wait_for(lambda: closed, 60) and closed == [1000]
    assert received == list(range(COUNT))
