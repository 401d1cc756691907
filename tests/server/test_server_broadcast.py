"""Point 5: server.connections and broadcast(), which no slow or dead client can stall."""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from typing import Any, List, Tuple

import pytest
import websocket
from helpers import wait_for
from server_raw import never_reading_client, open_raw, read_frame

import simplews


def test_connections_is_a_snapshot(server_factory: Any) -> None:
    server = server_factory()
    clients = [simplews.connect(server.url) for _ in range(3)]
    try:
        assert wait_for(lambda: len(server.connections) == 3, timeout=20)
        snapshot = server.connections
        snapshot.clear()
        assert len(server.connections) == 3
        assert {c.remote_address for c in server.connections} == {c.local_address for c in clients}
        clients[0].close()
        assert wait_for(lambda: len(server.connections) == 2, timeout=20)
    finally:
        for ws in clients:
            ws.close()
    assert wait_for(lambda: server.connections == [], timeout=20)


def test_broadcast_reaches_every_kind_of_client_and_counts(server_factory: Any) -> None:
    server = server_factory(on_message=lambda ws, m: ws.send(m), frame_size=4096)
    plain = simplews.connect(server.url, compression=None)
    deflated = simplews.connect(server.url, compression="deflate")
    wc = websocket.create_connection(server.url, timeout=10)
    try:
        assert wait_for(lambda: len(server.connections) == 3, timeout=20)
        for message in ["tick", "é" * 10_000, b"\x00\xff" * 20_000, ""]:
            assert server.broadcast(message) == 3
            assert plain.recv(timeout=10) == message
            assert deflated.recv(timeout=10) == message
            assert wc.recv() == message
        me = next(c for c in server.connections if c.remote_address == plain.local_address)
        assert server.broadcast("not to plain", exclude=[me]) == 2
        assert deflated.recv(timeout=10) == "not to plain" and wc.recv() == "not to plain"
        plain.send("echo still works")  # nothing else was queued for plain
        assert plain.recv(timeout=10) == "echo still works"
    finally:
        plain.close()
        deflated.close()
        wc.close()


def test_broadcast_rejects_a_bad_message_before_sending(server_factory: Any) -> None:
    server = server_factory()
    with simplews.connect(server.url) as ws:
        assert wait_for(lambda: len(server.connections) == 1, timeout=20)
        with pytest.raises(TypeError):
            server.broadcast(12345)  # type: ignore[arg-type]
        assert server.broadcast("after") == 1
        assert ws.recv(timeout=10) == "after"


def check_stream(data: bytes, sent: List[bytes]) -> int:
    """Parse what the slow client got: whole frames equal to ``sent`` in order, then at most
    one truncated frame or one close frame, then nothing. Returns how many whole messages."""
    pos = count = 0
    while pos < len(data):
        if len(data) - pos < 2:
            break
        opcode, n = data[pos] & 0x0F, data[pos + 1] & 0x7F
        hdr = 2
        if n == 126:
            n, hdr = struct.unpack("!H", data[pos + 2 : pos + 4])[0], 4
        elif n == 127:
            n, hdr = struct.unpack("!Q", data[pos + 2 : pos + 10])[0], 10
        if pos + hdr + n > len(data):
            assert opcode == 0x2 and data[pos + hdr :] == sent[count][: len(data) - pos - hdr]
            return count  # a truncated last frame, nothing after it
        payload = data[pos + hdr : pos + hdr + n]
        pos += hdr + n
        if opcode == 0x8:
            assert struct.unpack("!H", payload[:2])[0] == 1008 and pos == len(data)
            return count
        assert opcode == 0x2 and payload == sent[count]
        count += 1
    return count


@pytest.mark.timeout(60)
def test_slow_client_never_blocks_the_others(server_factory: Any) -> None:
    closes: queue.Queue[Tuple[Any, int]] = queue.Queue()
    server = server_factory(on_close=lambda ws, code, reason: closes.put((ws.remote_address, code)),
                            compression=None, ping_interval=None, frame_size=None)
    slow = never_reading_client(server.port)
    normal = [open_raw(server.port) for _ in range(3)]
    try:
        assert wait_for(lambda: len(server.connections) == 4, timeout=20)
        sent: List[bytes] = []
        counts = []
        for i in range(200):
            message = bytes([i % 256]) * 256 * 1024
            sent.append(message)
            counts.append(server.broadcast(message, timeout=0.5))
            for sock, buf in normal:  # the normal clients read every message, whole and in order
                assert read_frame(sock, buf) == (0x2, message)
            if counts[-1] == 3:
                break
        assert counts[-1] == 3 and all(c == 4 for c in counts[:-1])
        address, code = closes.get(timeout=10)
        assert address == slow.getsockname() and code == 1008
        assert server.broadcast(b"after") == 3
        for sock, buf in normal:
            assert read_frame(sock, buf) == (0x2, b"after")
        # what the slow client finally reads: whole frames in order, then at most one cut one or the close
        # frame (a broadcast counts a client that took the message into its write path; what a client too
        # slow to read it still owed when it was closed is never written)
        slow.settimeout(10)
        data = bytearray()
        while True:
            try:
                chunk = slow.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
        assert 1 <= check_stream(bytes(data), sent) <= len(counts)
    finally:
        slow.close()
        for sock, _ in normal:
            sock.close()


def test_dead_client_is_skipped(server_factory: Any) -> None:
    server = server_factory(compression=None)
    alive = [simplews.connect(server.url) for _ in range(2)]
    dead, _ = open_raw(server.port)
    try:
        assert wait_for(lambda: len(server.connections) == 3, timeout=20)
        dead.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        dead.close()  # reset, no close frame
        # until the server has seen the reset (a loaded machine may deliver it late), the
        # dead peer's kernel buffer still takes broadcasts; after that it is skipped
        counts = [server.broadcast("x" * 1000)]
        for _ in range(100):
            if counts[-1] == 2:
                break
            time.sleep(0.1)
            counts.append(server.broadcast("x" * 1000))
        counts.append(server.broadcast("x" * 1000))
        assert counts[-2:] == [2, 2] and all(c in (2, 3) for c in counts)
        for ws in alive:
            assert [ws.recv(timeout=10) for _ in counts] == ["x" * 1000] * len(counts)
    finally:
        for ws in alive:
            ws.close()


def test_broadcast_waits_for_a_busy_writer_then_delivers(server_factory: Any) -> None:
    """A handler sending a large message to a reading client may hold the write lock for a while;
    the broadcast waits for it (within its timeout) instead of skipping that client, and the
    two messages never interleave."""
    started = threading.Event()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        started.set()
        ws.send(b"B" * 8_000_000)

    server = server_factory(on_message=on_message, compression=None, max_message_size=None)
    with simplews.connect(server.url, max_message_size=None) as ws:
        ws.send("go")
        assert started.wait(10)
        got: queue.Queue[Any] = queue.Queue()
        reader = threading.Thread(target=lambda: [got.put(ws.recv(timeout=20)) for _ in range(2)])
        reader.start()
        assert server.broadcast("after the big one", timeout=20) == 1
        reader.join(30)
        both = {got.get(timeout=1), got.get(timeout=1)}
        assert both == {b"B" * 8_000_000, "after the big one"}
