"""Hostile clients against the server: each is bounded in memory and time, and the
other clients never notice."""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from types import ModuleType
from typing import Any, List, Tuple

import pytest
from helpers import wait_for
from rawpeers import client_frame, raw_client, read_until_close, upgrade_request

import simplews


def echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


def assert_healthy(server: simplews.Server) -> None:
    """A well-behaved client is served normally."""
    with simplews.connect(server.url) as ws:
        ws.send("still here?")
        assert ws.recv(timeout=10) == "still here?"


def closed_by_server(sock: socket.socket, budget: float = 30.0) -> bool:
    """Whether the server ends the connection within ``budget`` seconds (reading what it sends)."""
    sock.settimeout(budget)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    except socket.timeout:
        return False
    return True


@pytest.mark.timeout(120)
def test_slowloris_handshake_is_dropped_at_the_handshake_deadline(server_factory: Any) -> None:
    server = server_factory(on_message=echo, handshake_timeout=1.0)
    request = upgrade_request()[:-2]  # never the final blank line
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    stop = threading.Event()
    dropped: List[bool] = []

    def trickle() -> None:
        # one byte every 50 ms on every socket: a per-read idle timer would never fire
        pending = list(socks)
        for i in range(600):  # at most 30 s
            for sock in list(pending):
                try:
                    sock.send(request[i % len(request) : i % len(request) + 1] if i < len(request) else b"X")
                except OSError:
                    pending.remove(sock)
                    dropped.append(True)
            if not pending or stop.wait(0.05):
                return

    thread = threading.Thread(target=trickle, name="test-slowloris")
    thread.start()
    try:
        assert_healthy(server)  # while the slow clients hold their threads
        assert all(closed_by_server(s) for s in socks)
    finally:
        stop.set()
        thread.join(60)
        for sock in socks:
            sock.close()
    assert_healthy(server)
    assert wait_for(lambda: server._live_count() == 0, 10)


def test_endless_headers_get_431_and_the_connection_closes(server_factory: Any) -> None:
    server = server_factory(on_message=echo)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    line = b"X-Padding: " + b"a" * 1000 + b"\r\n"
    sent = 0
    try:
        while sent < 8 << 20 and not select.select([sock], [], [], 0)[0]:
            sock.sendall(line)
            sent += len(line)
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = sock.recv(65536)
    assert response.startswith(b"HTTP/1.1 431 "), response[:100]
    assert sent < 8 << 20  # the server answered long before we ran out of headers
    assert closed_by_server(sock)
    sock.close()
    assert_healthy(server)


def frame_header(length: int) -> bytes:
    """A masked binary frame header with a 64-bit length field, and its masking key."""
    return struct.pack("!BBQ", 0x82, 0x80 | 127, length) + b"\x00\x00\x00\x00"


@pytest.mark.parametrize("length, code", [(1 << 63, 1002), ((1 << 63) - 1, 1009), (1 << 62, 1009)])
def test_huge_length_field_is_refused_before_any_allocation(
    server_factory: Any, length: int, code: int, tracemalloc: ModuleType
) -> None:
    closes: List[Tuple[int, str]] = []
    server = server_factory(on_message=echo, on_close=lambda ws, c, r: closes.append((c, r)))
    sock, _ = raw_client(server.url)
    tracemalloc.start()
    try:
        sock.sendall(frame_header(length) + b"x" * 1000)
        _, close = read_until_close(sock)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert close is not None and close.code == code
    assert peak < 4 << 20, peak
    sock.close()
    assert wait_for(lambda: closes, 10) and closes[0][0] == code and len(closes) == 1
    assert_healthy(server)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("send_timeout", [1.0, None])
def test_ping_flood_from_a_client_that_never_reads(server_factory: Any, send_timeout: Any, tracemalloc: ModuleType) -> None:
    closes: List[int] = []
    server = server_factory(on_message=echo, send_timeout=send_timeout, close_timeout=1.0, on_close=lambda ws, c, r: closes.append(c))
    sock, _ = raw_client(server.url)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    ping = client_frame(0x9, b"p" * 125)
    burst = ping * 512  # about 68 KB of pings per write
    sent = 0
    tracemalloc.start()
    try:
        sock.settimeout(2.0)
        try:
            # the server keeps reading (pongs are coalesced, not written in its way) until its drain
            # bound drops us; without one, the flood goes on, bounded in memory, until we stop
            end = time.monotonic() + 8.0
            while sent < 2 << 30 and time.monotonic() < end:
                sock.sendall(burst)
                sent += len(burst)
        except (socket.timeout, BrokenPipeError, ConnectionResetError):
            pass
        assert_healthy(server)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert sent < 2 << 30
    assert peak < 8 << 20, peak  # pongs are not queued without bound
    if send_timeout is None:
        # nothing bounds a blocked pong write on its own, but shutdown still ends it (within
        # close_timeout: it used to wait forever for the write lock the blocked reader held)
        stopper = threading.Thread(target=server.shutdown, name="test-shutdown")
        stopper.start()
        stopper.join(60)
        assert not stopper.is_alive()
    assert closed_by_server(sock)
    sock.close()
    # pongs owed to a peer that does not read are coalesced (RFC 6455 5.5.3): what ends it is the drain
    # bound, send_timeout (1011), or shutdown (1006) when there is none; the healthy clients closed with 1000
    assert wait_for(lambda: [c for c in closes if c != 1000], 10)
    assert [c for c in closes if c != 1000] == [1011 if send_timeout is not None else 1006], closes
    if send_timeout is not None:
        assert_healthy(server)


@pytest.mark.timeout(120)
def test_clients_that_connect_and_never_read(server_factory: Any) -> None:
    server = server_factory(on_message=echo, send_timeout=0.5, handshake_timeout=1.0, compression=None)
    # never even send the handshake
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(10)]
    # finish the handshake, then never read what the server sends
    stuck = []
    for _ in range(3):
        sock, _ = raw_client(server.url)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stuck.append(sock)
    received: List[Any] = []
    with simplews.connect(server.url, max_message_size=None, compression=None) as healthy:
        assert wait_for(lambda: len(server.connections) == 4, 10)
        reader = threading.Thread(target=lambda: received.extend(healthy.recv(timeout=60) for _ in range(20)), name="test-reader")
        reader.start()
        payload = b"b" * (1 << 20)
        delivered = []
        for i in range(20):  # a feed that lets a healthy client stay at most 8 MiB behind
            assert wait_for(lambda i=i: len(received) >= i - 8, 30)  # type: ignore[misc]
            delivered.append(server.broadcast(payload))
        reader.join(60)
        # the stuck ones took what their buffers held, then nothing for send_timeout: aborted
        assert wait_for(lambda: len(server.connections) == 1, 30), server.connections
        assert server.broadcast(b"only the healthy client is left") == 1
    assert len(received) == 20 and all(m == payload for m in received)
    assert all(closed_by_server(s) for s in silent)
    # (the stuck sockets are not read out: megabytes through a 4 KB window take long)
    for sock in silent + stuck:
        sock.close()
    assert wait_for(lambda: server._live_count() == 0, 10)
    assert_healthy(server)


def test_many_hostile_clients_at_once_leave_the_server_serving(server_factory: Any) -> None:
    server = server_factory(on_message=echo, handshake_timeout=1.0, max_header_size=4096)
    garbage = [b"\x16\x03\x01\x02\x00" + b"\x00" * 100, b"GET / HTTP/1.0\r\n\r\n", b"\r\n\r\n", b"POST / HTTP/1.1\r\n\r\n"]
    socks = []
    for data in garbage * 5:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(data)
        socks.append(sock)
    assert_healthy(server)
    assert all(closed_by_server(s) for s in socks)
    for sock in socks:
        sock.close()
    assert_healthy(server)
