"""Every limit at its default, hit by a hostile peer: the peer is stopped with the RFC's answer,
memory and threads stay bounded, and the other clients of the same server are still served.

Nothing here lowers a limit: a default that is not safe would fail these tests.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import zlib
from types import ModuleType
from typing import Any, Callable, List, Tuple

import pytest
from helpers import our_threads, wait_for
from rawpeers import RawServer, client_frame, raw_client, read_until_close, rss_bytes, server_frame, upgrade_request

import simplews
from simplews.handshake import MAX_HEADERS
from simplews.listener import DEFAULT_MAX_PENDING_HANDSHAKES
from simplews.protocol import DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, Close, Message, Pong, Protocol
from simplews.writer import HIGH_WATER

BINARY, CONT = 0x2, 0x0


def echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


def assert_healthy(server: simplews.Server, **options: Any) -> None:
    """A well-behaved client is served normally."""
    with simplews.connect(server.url, **options) as ws:
        ws.send("still here?")
        assert ws.recv(timeout=30) == "still here?"


class Closes:
    """Records on_close of the server's connections."""

    def __init__(self) -> None:
        self.codes: List[Tuple[int, str]] = []

    def __call__(self, ws: simplews.Connection, code: int, reason: str) -> None:
        self.codes.append((code, reason))


def fragments(payload: bytes, count: int, *, mask: bool) -> bytes:
    """A binary message opened and continued by ``count`` frames of ``payload``, never finished."""
    make = client_frame if mask else server_frame
    return make(BINARY, payload, fin=False) + b"".join(make(CONT, payload, fin=False) for _ in range(count - 1))


class PeerCloser:
    """A raw server side that reads until the client's close frame, then ends TCP (as a server should)."""

    def __init__(self, sock: socket.socket) -> None:
        self.code: Any = None
        self._sock = sock
        self._thread = threading.Thread(target=self._run, name="test-peer-closer")
        self._thread.start()

    def _run(self) -> None:
        _, close = read_until_close(self._sock, is_client=False)
        self.code = close.code if close is not None else None
        self._sock.shutdown(socket.SHUT_RDWR)

    def result(self) -> Any:
        """The code of the client's close frame."""
        self._thread.join(30)
        return self.code


# --- frames per message ----------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("payload", [b"", b"x"], ids=["empty", "one-byte"])
def test_server_stops_endless_fragments_at_the_default_cap(server_factory: Any, payload: bytes) -> None:
    closes = Closes()
    server = server_factory(on_message=echo, on_close=closes)
    sock, leftover = raw_client(server.url)
    try:
        sock.sendall(fragments(payload, DEFAULT_MAX_FRAGMENTS, mask=True))
        assert_healthy(server)  # while one message is 4,096 frames long
        sock.sendall(client_frame(CONT, payload, fin=False))  # frame 4,097
        _, close = read_until_close(sock, leftover)
    finally:
        sock.close()
    assert close is not None and close.code == 1009, close
    assert "4096 frames" in close.reason
    assert wait_for(lambda: (1009, close.reason) in closes.codes, 10), closes.codes
    assert_healthy(server)


@pytest.mark.timeout(120)
def test_client_stops_endless_fragments_at_the_default_cap() -> None:
    with RawServer() as peer:
        accepted = peer.accept_in_thread()
        with simplews.connect(peer.url, compression=None) as ws:
            sock, _ = accepted.result()
            closing = PeerCloser(sock)
            sock.sendall(fragments(b"", DEFAULT_MAX_FRAGMENTS + 1, mask=False))
            with pytest.raises(simplews.ConnectionClosedError) as info:
                ws.recv(timeout=30)
    assert info.value.code == 1009 and "4096 frames" in info.value.reason
    assert closing.result() == 1009


@pytest.mark.timeout(120)
def test_our_largest_default_message_never_trips_our_default_cap(echo_server: simplews.Server) -> None:
    """The biggest message a default receiver takes, at the smallest frame size our docs allow."""
    message = os.urandom(DEFAULT_MAX_MESSAGE_SIZE)
    with simplews.connect(echo_server.url, frame_size=256, compression=None) as ws:
        ws.send(message)
        assert ws.recv(timeout=30) == message


# --- the opening handshake ----------------------------------------------------------------


def http_status(port: int, request: bytes) -> int:
    """Send a request head; return the status of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        head = b""
        while b"\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                break
            head += chunk
    return int(head.split(b" ")[1])


def test_more_headers_than_the_default_count_get_431(server_factory: Any) -> None:
    server = server_factory(on_message=echo)
    extra = "".join(f"X-H{i}: v\r\n" for i in range(MAX_HEADERS))  # plus the upgrade headers: over the count
    request = upgrade_request()[:-2] + extra.encode() + b"\r\n"
    assert len(request) < 16 * 1024  # the count trips, not the size
    assert http_status(server.port, request) == 431
    assert_healthy(server)


def test_a_head_over_the_default_size_gets_431(server_factory: Any) -> None:
    server = server_factory(on_message=echo)
    request = upgrade_request()[:-2] + b"X-Big: " + b"a" * (16 * 1024) + b"\r\n\r\n"
    assert http_status(server.port, request) == 431
    assert_healthy(server)


@pytest.mark.timeout(120)
def test_silent_handshakes_hold_at_most_the_default_pending_cap_and_drop_at_the_default_timeout(server_factory: Any) -> None:
    """More clients than the cap open TCP and say nothing: they cost no more threads than the cap,
    the connected clients stay served, newcomers get in once the silent ones time out (10 s)."""
    server = server_factory(on_message=echo)
    with simplews.connect(server.url) as connected:
        base = len(our_threads())
        silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(DEFAULT_MAX_PENDING_HANDSHAKES + 40)]
        try:
            assert wait_for(lambda: len(our_threads()) >= base + DEFAULT_MAX_PENDING_HANDSHAKES, 30)
            time.sleep(0.5)  # give extra threads, if any, the chance to appear
            assert len(our_threads()) <= base + DEFAULT_MAX_PENDING_HANDSHAKES
            connected.send("served")
            assert connected.recv(timeout=30) == "served"
            started = time.monotonic()
            assert_healthy(server, open_timeout=60)  # waits in the backlog until slots free up
            waited = time.monotonic() - started
            for sock in silent:  # every silent client is dropped by the server, none left hanging
                sock.settimeout(30)
                assert sock.recv(1) == b""
        finally:
            for sock in silent:
                sock.close()
    assert waited >= 5.0  # it really waited for the handshake timeout (10 s), not for a thread


@pytest.mark.timeout(120)
def test_a_silent_server_hits_the_default_open_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    try:
        started = time.monotonic()
        with pytest.raises(simplews.OpenTimeout):
            simplews.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/")
        waited = time.monotonic() - started
        assert waited >= 9.0  # the default is 10 s, not less
    finally:
        listener.close()


# --- messages ----------------------------------------------------------------------------


@pytest.mark.timeout(120)
def test_server_refuses_a_message_over_the_default_size(server_factory: Any) -> None:
    closes = Closes()
    server = server_factory(on_message=echo, on_close=closes)
    sock, leftover = raw_client(server.url)
    try:
        sock.sendall(client_frame(BINARY, bytes(DEFAULT_MAX_MESSAGE_SIZE + 1)))
        _, close = read_until_close(sock, leftover)
    finally:
        sock.close()
    assert close is not None and close.code == 1009
    assert_healthy(server)


@pytest.mark.timeout(120)
def test_client_refuses_a_message_over_the_default_size() -> None:
    with RawServer() as peer:
        accepted = peer.accept_in_thread()
        with simplews.connect(peer.url, compression=None) as ws:
            sock, _ = accepted.result()
            closing = PeerCloser(sock)
            limit = DEFAULT_MAX_MESSAGE_SIZE
            sock.sendall(server_frame(BINARY, bytes(limit)) + server_frame(BINARY, bytes(limit + 1)))
            assert ws.recv(timeout=30) == bytes(DEFAULT_MAX_MESSAGE_SIZE)  # exactly the limit is fine
            with pytest.raises(simplews.ConnectionClosedError) as info:
                ws.recv(timeout=30)
    assert info.value.code == 1009
    assert closing.result() == 1009


def deflate_upgrade() -> bytes:
    return upgrade_request()[:-2] + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n"


@pytest.mark.timeout(120)
def test_a_compressed_bomb_stops_at_the_default_decompressed_size(server_factory: Any, tracemalloc: ModuleType) -> None:
    closes = Closes()
    server = server_factory(on_message=echo, on_close=closes)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = compressor.compress(bytes(64 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)  # 64 MiB in ~64 KiB
    assert len(bomb) < 100_000
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    tracemalloc.start()
    try:
        sock.sendall(deflate_upgrade())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
        assert b"permessage-deflate" in head
        leftover = head.split(b"\r\n\r\n", 1)[1]
        frame = bytearray(client_frame(BINARY, bomb))
        frame[0] |= 0x40  # RSV1: compressed
        sock.sendall(bytes(frame))
        _, close = read_until_close(sock, leftover)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        sock.close()
    assert close is not None and close.code == 1009
    assert peak < 16 << 20, peak  # 64 MiB were never produced
    assert_healthy(server)


@pytest.mark.timeout(120)
def test_read_ahead_stops_at_the_default_queue_while_the_handler_is_busy(server_factory: Any, tracemalloc: ModuleType) -> None:
    release = threading.Event()
    got: List[int] = []

    def on_message(ws: simplews.Connection, message: Any) -> None:
        if isinstance(message, str):  # the healthy client
            ws.send(message)
            return
        got.append(len(message))
        release.wait(60)

    server = server_factory(on_message=on_message)
    sock, _ = raw_client(server.url)
    message = client_frame(BINARY, bytes(100_000))
    tracemalloc.start()
    try:
        sock.setblocking(False)
        pushed = blocked = 0
        deadline = time.monotonic() + 30
        while blocked < 20 and time.monotonic() < deadline:  # push until TCP pushes back, repeatedly
            try:
                pushed += sock.send(message)
            except BlockingIOError:
                blocked += 1
                time.sleep(0.1)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    release.set()
    assert blocked == 20  # backpressure reached the peer, within seconds
    assert peak < 8 << 20, peak  # about max_queue (32) messages of 100 KB are read ahead
    assert pushed < 64 << 20, pushed  # the rest waits in the kernel's buffers, not in ours
    assert_healthy(server)
    sock.close()


# --- control frames and a peer that stops reading ------------------------------------------

PING, CLOSE = 0x9, 0x8
FLOOD = 100_000


def ping_payload(i: int) -> bytes:
    """The payload of ping number ``i``: its number, padded to the largest control frame."""
    return b"%08d" % i + b"p" * 117


@pytest.mark.timeout(180)
def test_a_ping_flood_from_a_client_that_does_not_read_gets_coalesced_pongs(server_factory: Any) -> None:
    """RFC 6455 5.5.3 lets a pong answer only the latest ping: the flood costs at most 16 pending
    pongs, the connection stays up, and the newest ping is answered once the client reads."""
    closes = Closes()
    server = server_factory(on_message=echo, on_close=closes)
    sock, leftover = raw_client(server.url, timeout=60, rcvbuf=4096)  # a small window: pongs back up at once
    held: List[Tuple[int, int]] = []  # (pongs pending, bytes owed to the socket) after each burst
    rss = rss_bytes()
    assert wait_for(lambda: server.connections, 10)
    (conn,) = server.connections
    for start in range(0, FLOOD, 1000):
        sock.sendall(b"".join(client_frame(PING, ping_payload(i)) for i in range(start, start + 1000)))
        held.append((len(conn.protocol._pongs), conn.stream.owed))
        if start == FLOOD // 2:
            assert_healthy(server)  # in the middle of the flood
    grown = rss_bytes() - rss
    assert max(pongs for pongs, _ in held) <= 16, held
    assert max(owed for _, owed in held) <= HIGH_WATER + 4096, held  # the writer's high-water mark, plus the pending pongs
    assert grown < 8 << 20, grown  # 100,000 pongs would be 12.7 MB (not traced: tracing would slow the flood past send_timeout)
    # now the client reads: the newest ping is answered, and the connection is still open
    parser = Protocol(True, max_message_size=None)
    events: List[Any] = parser.receive_data(leftover) if leftover else []

    def read_until(done: Callable[[], bool]) -> None:
        while not done():
            data = sock.recv(65536)
            assert data, f"closed after {len(events)} events"
            events.extend(parser.receive_data(data))

    newest = ping_payload(FLOOD - 1)
    read_until(lambda: Pong(newest) in events)
    pongs = [e.data for e in events if isinstance(e, Pong)]
    numbers = [int(p[:8]) for p in pongs]
    assert numbers == sorted(set(numbers))  # answers to real pings, in order, none twice
    assert len(pongs) < FLOOD  # coalesced
    sock.sendall(client_frame(0x1, b"still open?"))
    read_until(lambda: Message("still open?") in events)
    sock.sendall(client_frame(CLOSE, (1000).to_bytes(2, "big")))
    read_until(lambda: any(isinstance(e, Close) for e in events))
    sock.close()
    assert [e.code for e in events if isinstance(e, Close)] == [1000]
    assert wait_for(lambda: len(closes.codes) == 2, 10), closes.codes
    assert [code for code, _ in closes.codes] == [1000, 1000]  # the healthy client's, and the flooder's


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_peer_that_stops_reading_hits_the_default_send_timeout(server_factory: Any) -> None:
    """The server's send fails with 1011 once the peer took nothing for send_timeout (30 s)."""
    outcome: List[BaseException] = []
    started: List[float] = []

    def flood(ws: simplews.Connection) -> None:
        if ws.path != "/stuck":
            return
        started.append(time.monotonic())
        try:
            for _ in range(100_000):  # far more than any socket buffer holds
                ws.send(b"z" * 65536)
        except simplews.WebSocketError as exc:
            outcome.append(exc)
            started.append(time.monotonic())

    closes = Closes()
    server = server_factory(on_open=flood, on_message=echo, on_close=closes, compression=None)
    sock, _ = raw_client(server.url, path="/stuck", rcvbuf=4096)
    try:
        assert_healthy(server)  # while the stuck connection's send is blocked
        assert wait_for(lambda: outcome, 120), "the send never gave up"
    finally:
        sock.close()
    exc = outcome[0]
    assert isinstance(exc, simplews.ConnectionClosedError) and exc.code == 1011, exc
    assert "send timed out" in exc.reason
    assert started[1] - started[0] >= 25.0  # the default (30 s) decided, not a lower bound
    assert wait_for(lambda: (1011, exc.reason) in closes.codes, 10), closes.codes
    assert_healthy(server)


# --- file descriptors ----------------------------------------------------------------------

EMFILE_SERVER = r"""
import logging, resource, sys, time
import simplews
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(message)s")
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
server = simplews.serve(on_message=lambda ws, m: ws.send(m), port=0, handshake_timeout=60)
print(server.port, flush=True)
sys.stdin.readline()
server.shutdown()
"""


@pytest.mark.timeout(120)
def test_running_out_of_file_descriptors_backs_off_instead_of_spinning() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", EMFILE_SERVER, "48"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    socks: List[socket.socket] = []
    try:
        assert proc.stdout is not None and proc.stdin is not None
        port = int(proc.stdout.readline())
        for _ in range(60):  # more than the server's descriptors allow: accept() fails with EMFILE
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        time.sleep(3.0)  # a busy loop would fail accept() thousands of times meanwhile
        for sock in socks:
            sock.close()
        socks = []
        with simplews.connect(f"ws://127.0.0.1:{port}/", open_timeout=30) as ws:  # serving again
            ws.send("back")
            assert ws.recv(timeout=30) == "back"
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=60)
    finally:
        for sock in socks:
            sock.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    failures = [line for line in err.splitlines() if line.startswith("accept failed")]
    assert failures, err[-2000:]  # it did run out, and said so
    assert sum("Too many open files" in line for line in failures) == len(failures)
    assert len(failures) < 40, len(failures)  # backed off: 10 ms doubling to 1 s, not a spin
    assert sum(line.startswith("accept failed") and "retrying" in line for line in err.splitlines()) >= 1
