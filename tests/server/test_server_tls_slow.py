"""Broadcast and shutdown over TLS with a client that never reads (SSL writes cannot time out)."""

from __future__ import annotations

import queue
import socket
import ssl
import threading
from typing import Any, List, Tuple

import pytest
import trustme
from helpers import wait_for
from server_raw import client_frame, read_frame, read_response, upgrade_request

import simplews


@pytest.fixture(scope="module")
def contexts() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def tls_client(port: int, ctx: ssl.SSLContext, rcvbuf: int = 0) -> Tuple[ssl.SSLSocket, bytearray]:
    raw = socket.socket()
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    sock.sendall(upgrade_request())
    status, _, rest = read_response(sock)
    assert status == 101
    return sock, bytearray(rest)


@pytest.mark.timeout(60)
def test_tls_broadcast_with_a_client_that_never_reads(server_factory: Any, contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    closes: queue.Queue[int] = queue.Queue()
    server = server_factory(ssl_context=server_ctx, compression=None, frame_size=None, ping_interval=None,
                            on_close=lambda ws, code, reason: closes.put(code))
    slow, _ = tls_client(server.port, client_ctx, rcvbuf=4096)
    normal = [tls_client(server.port, client_ctx) for _ in range(2)]
    try:
        assert wait_for(lambda: len(server.connections) == 3, timeout=20)
        counts: List[int] = []
        for i in range(200):
            message = bytes([i % 256]) * 256 * 1024
            counts.append(server.broadcast(message, timeout=0.5))
            for sock, buf in normal:
                assert read_frame(sock, buf) == (0x2, message)
            if counts[-1] == 2:
                break
        assert counts[-1] == 2 and all(c == 3 for c in counts[:-1])
        assert closes.get(timeout=10) == 1008
        assert server.broadcast(b"after") == 2
        for sock, buf in normal:
            assert read_frame(sock, buf) == (0x2, b"after")
    finally:
        slow.close()
        for sock, _ in normal:
            sock.close()


@pytest.mark.timeout(60)
def test_tls_shutdown_with_a_writer_stuck_on_a_client_that_never_reads(contexts: Any) -> None:
    server_ctx, client_ctx = contexts
    flooding = threading.Event()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        flooding.set()
        while True:
            ws.send(b"x" * 1_000_000)

    server = simplews.serve(on_message=on_message, port=0, ssl_context=server_ctx, compression=None)
    stuck, _ = tls_client(server.port, client_ctx, rcvbuf=4096)
    stuck.sendall(client_frame(b"flood me"))
    polite = simplews.connect(server.url, ssl_context=client_ctx)
    assert flooding.wait(10)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (server.shutdown(timeout=1.0), done.set()))
    thread.start()
    with pytest.raises(simplews.ConnectionClosedOK) as info:
        polite.recv(timeout=20)
    assert info.value.code == 1001
    thread.join(30)
    assert done.is_set()
    stuck.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("use_tls", [False, True])
def test_send_timeout_aborts_a_client_that_never_reads(contexts: Any, server_factory: Any, use_tls: bool) -> None:
    """A handler's send() to a stalled client fails once the client took nothing for send_timeout
    (also over TLS): the send raises ConnectionClosedError 1011 and only that connection ends."""
    server_ctx, client_ctx = contexts
    errors: queue.Queue[BaseException] = queue.Queue()
    closes: queue.Queue[int] = queue.Queue()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        if message == b"flood me":
            while True:
                ws.send(b"x" * 1_000_000)
        ws.send(message)

    server = server_factory(on_message=on_message, send_timeout=0.5, compression=None,
                            ssl_context=server_ctx if use_tls else None,
                            on_error=lambda ws, exc: errors.put(exc), on_close=lambda ws, code, reason: closes.put(code))
    if use_tls:
        stalled, _ = tls_client(server.port, client_ctx, rcvbuf=4096)
        healthy = simplews.connect(server.url, ssl_context=client_ctx)
    else:
        stalled = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(upgrade_request())
        assert read_response(stalled)[0] == 101
        healthy = simplews.connect(server.url)
    try:
        stalled.sendall(client_frame(b"flood me", opcode=0x2))
        error = errors.get(timeout=30)
        assert isinstance(error, simplews.ConnectionClosedError) and error.code == 1011, error
        assert "send timed out" in error.reason
        assert closes.get(timeout=10) == 1011
        healthy.send("still served")
        assert healthy.recv(timeout=10) == "still served"
    finally:
        healthy.close()
        stalled.close()
