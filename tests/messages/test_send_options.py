"""send(compress=False), send(timeout=) and buffered_amount in both roles, against simplews and independent peers."""

from __future__ import annotations

import hashlib
import socket
import threading
from typing import Any, Callable, List

import pytest
import websocket  # websocket-client
from helpers import wait_for
from websockets.sync.client import connect as ws_connect

import simplews

BIG = 32 * 1024 * 1024  # more than loopback socket buffers hold
FIN_BINARY, FIN_BINARY_COMPRESSED = 0x82, 0xC2


def first_byte_of_frames(stream: bytes) -> List[int]:
    """The first header byte of every frame after the HTTP head in one direction of a connection."""
    pos = stream.index(b"\r\n\r\n") + 4
    firsts: List[int] = []
    while pos + 2 <= len(stream):
        b0, b1 = stream[pos], stream[pos + 1]
        length, pos = b1 & 0x7F, pos + 2
        if length == 126:
            length, pos = int.from_bytes(stream[pos : pos + 2], "big"), pos + 2
        elif length == 127:
            length, pos = int.from_bytes(stream[pos : pos + 8], "big"), pos + 8
        pos += (4 if b1 & 0x80 else 0) + length
        firsts.append(b0)
    return firsts


def _echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


def test_client_compress_false_skips_compression(peer_server: Callable[..., str], recording_proxy: Any) -> None:
    url = peer_server(_echo, compression="deflate")
    proxy = recording_proxy(int(url.rsplit(":", 1)[1].strip("/")))
    with simplews.connect(f"ws://127.0.0.1:{proxy.port}/") as ws:
        ws.send(b"a" * 5000, compress=False)
        assert ws.recv(timeout=5) == b"a" * 5000
        ws.send(b"b" * 5000)
        assert ws.recv(timeout=5) == b"b" * 5000
    assert first_byte_of_frames(bytes(proxy.upstream))[:2] == [FIN_BINARY, FIN_BINARY_COMPRESSED]


def test_server_compress_false_skips_compression(server_factory: Callable[..., simplews.Server], recording_proxy: Any) -> None:
    def on_message(ws: simplews.Connection, message: Any) -> None:
        ws.send(b"x" * 5000, compress=False)
        ws.send(b"y" * 5000)

    server = server_factory(on_message=on_message)
    proxy = recording_proxy(server.port)
    with ws_connect(f"ws://127.0.0.1:{proxy.port}/", compression="deflate") as peer:
        peer.send("go")
        assert peer.recv(timeout=5) == b"x" * 5000
        assert peer.recv(timeout=5) == b"y" * 5000
    assert first_byte_of_frames(bytes(proxy.downstream))[:2] == [FIN_BINARY, FIN_BINARY_COMPRESSED]


@pytest.fixture
def gated_server(server_factory: Callable[..., simplews.Server]) -> Any:
    """A simplews server that reads nothing until ``gate`` is set, then answers each message's SHA-256."""
    gate = threading.Event()

    def handler(ws: simplews.Connection) -> None:
        gate.wait(30)
        for message in ws:
            ws.send(hashlib.sha256(message if isinstance(message, bytes) else message.encode()).hexdigest())

    server = server_factory(handler, max_queue=1, max_message_size=None, compression=None)
    yield server, gate
    gate.set()


def test_client_send_timeout_keeps_an_unfragmented_message(gated_server: Any) -> None:
    server, gate = gated_server
    data = b"z" * BIG
    with simplews.connect(server.url, frame_size=None, compression=None) as ws:
        ws.send(b"first")
        with pytest.raises(simplews.WebSocketTimeout):
            ws.send(data, timeout=0.3)
        assert ws.buffered_amount > 0  # owed, in order, not lost
        assert ws.state is simplews.State.OPEN
        gate.set()
        assert ws.recv(timeout=30) == hashlib.sha256(b"first").hexdigest()
        assert ws.recv(timeout=30) == hashlib.sha256(data).hexdigest()
        assert wait_for(lambda: ws.buffered_amount == 0, timeout=10)


def test_client_send_timeout_in_the_middle_of_frames_fails_with_1011(gated_server: Any) -> None:
    server, gate = gated_server
    with simplews.connect(server.url, compression=None) as ws:
        ws.send(b"first")  # the server reads it ahead, then no more
        with pytest.raises(simplews.WebSocketTimeout):
            ws.send(b"z" * BIG, timeout=0.3)
        assert ws.closed and ws.close_code == 1011
        with pytest.raises(simplews.ConnectionClosed):
            ws.send("more")


def test_server_send_timeout_with_websocket_client_that_reads_late(server_factory: Callable[..., simplews.Server]) -> None:
    data = bytes(range(256)) * (8 * 1024 * 1024 // 256)
    seen: List[Any] = []
    done = threading.Event()

    def on_open(ws: simplews.Connection) -> None:
        try:
            ws.send(data, timeout=0.3)
        except simplews.WebSocketTimeout:
            seen.append(ws.buffered_amount)
        done.set()

    server = server_factory(on_open=on_open, frame_size=None, compression=None)
    # reads only when asked; a small receive buffer so the kernel cannot take the whole message
    peer = websocket.create_connection(server.url, timeout=30, sockopt=((socket.SOL_SOCKET, socket.SO_RCVBUF, 65536),))
    try:
        assert done.wait(30)
        assert len(seen) == 1 and seen[0] > 0
        assert peer.recv() == data
    finally:
        peer.close()
