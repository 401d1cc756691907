"""The I/O shell under the loads users put on it: TLS from several threads at once, keepalive
during sustained traffic and slow readers, a peer that vanishes while we send, pongs while a
large message streams, and nothing but our own exceptions out of send() and recv().

Bounds in these tests only guard against hangs; nothing asserts how fast anything is.
"""

from __future__ import annotations

import os
import random
import socket
import ssl
import threading
import time
import zlib
from typing import Any, Dict, List, Optional, Set, Tuple

import pytest
import trustme
from helpers import wait_for
from rawpeers import RawServer, read_head, upgrade_request

import simplews
from simplews.protocol import Message, Pong, Protocol

#: how long the sustained load runs (the issue asks for at least two minutes)
SUSTAIN = float(os.environ.get("SIMPLEWS_SUSTAIN_SECONDS", "120"))


# --- TLS: one thread at a time inside each SSL object ----------------------------------------


class CountingSSLObject(ssl.SSLObject):
    """An SSL object that records how many threads are inside it at once, and which threads use it."""

    made: List[CountingSSLObject] = []
    guard = threading.Lock()

    def _enter(self) -> None:
        with CountingSSLObject.guard:
            if not hasattr(self, "inside"):
                self.inside, self.most, self.threads = 0, 0, set()
                CountingSSLObject.made.append(self)
            self.inside += 1
            self.most = max(self.most, self.inside)
            self.threads.add(threading.get_ident())

    def _leave(self) -> None:
        with CountingSSLObject.guard:
            self.inside -= 1

    def _wrapped(name: str) -> Any:  # type: ignore[misc]
        def method(self: CountingSSLObject, *args: Any, **kwargs: Any) -> Any:
            self._enter()
            try:
                return getattr(ssl.SSLObject, name)(self, *args, **kwargs)
            finally:
                self._leave()

        return method

    read = _wrapped("read")
    write = _wrapped("write")
    do_handshake = _wrapped("do_handshake")
    unwrap = _wrapped("unwrap")


@pytest.fixture(scope="module")
def tls_pair() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server)
    client = ssl.create_default_context()
    ca.configure_trust(client)
    return server, client


def payload(seq: int, size: int) -> bytes:
    """A message that tells its own sequence number and checks itself."""
    body = random.Random(seq).randbytes(size)
    return seq.to_bytes(8, "big") + zlib.crc32(body).to_bytes(4, "big") + body


def check(message: bytes) -> int:
    """The sequence number of an intact message (asserts it is intact)."""
    seq, crc, body = int.from_bytes(message[:8], "big"), int.from_bytes(message[8:12], "big"), message[12:]
    assert zlib.crc32(body) == crc, f"message {seq} garbled"
    return seq


@pytest.mark.timeout(SUSTAIN + 240)
def test_sustained_wss_load_with_default_keepalive_loses_and_closes_nothing(tls_pair: Any) -> None:
    """One thread sends 1 B - 200 KiB messages as fast as it can over wss://, a second receives the
    echoes, the server broadcasts from a third: for two minutes, with keepalive at its defaults
    (20 s / 20 s), in both roles. Nothing is lost, garbled or closed; and no two threads are ever
    inside one SSL object at once, while several threads use each of them."""
    server_ctx, client_ctx = tls_pair
    server_ctx.sslobject_class = client_ctx.sslobject_class = CountingSSLObject
    CountingSSLObject.made.clear()
    closes: List[Tuple[int, str]] = []
    server = simplews.serve(
        on_message=lambda ws, m: ws.send(m), on_close=lambda ws, c, r: closes.append((c, r)),
        port=0, ssl_context=server_ctx, max_message_size=None, compression=None,
    )
    errors: List[BaseException] = []
    stop = threading.Event()
    sent: List[int] = []
    echoed: List[int] = []
    broadcasts: List[bytes] = []
    taken: List[int] = []
    try:
        ws = simplews.connect(f"wss://localhost:{server.port}/", ssl_context=client_ctx, max_message_size=None, compression=None)

        def sender() -> None:
            rng = random.Random(1)
            seq = 0
            try:
                while not stop.is_set():
                    ws.send(payload(seq, rng.randint(1, 200 * 1024)))
                    sent.append(seq)
                    seq += 1
            except BaseException as exc:
                errors.append(exc)

        def receiver() -> None:
            try:
                while True:
                    message = ws.recv(timeout=60)
                    if isinstance(message, str):
                        broadcasts.append(message.encode())
                    else:
                        echoed.append(check(message))
            except simplews.ConnectionClosedOK:
                pass
            except BaseException as exc:
                errors.append(exc)

        def broadcaster() -> None:
            n = 0
            while not stop.wait(0.01):
                if server.broadcast(f"tick {n}") == 1:
                    taken.append(n)
                n += 1

        threads = [threading.Thread(target=f, name=f"test-{f.__name__}") for f in (sender, receiver, broadcaster)]
        for thread in threads:
            thread.start()
        stop.wait(SUSTAIN)
        stop.set()
        threads[0].join(60)
        threads[2].join(60)
        assert wait_for(lambda: len(echoed) == len(sent), 120), (len(echoed), len(sent))
        ws.close()
        threads[1].join(60)
        assert not errors, errors[:3]
        assert echoed == sent == list(range(len(sent)))  # every echo back, whole and in order
        assert [int(b.split()[1]) for b in broadcasts] == taken  # every broadcast taken arrived, in order
        assert ws.close_code == 1000
        assert len(sent) > 100 and len(taken) > 100
    finally:
        stop.set()
        server.shutdown()
    assert closes == [(1000, "")]  # the server's side closed only at our close
    objects = list(CountingSSLObject.made)
    assert len(objects) == 2
    assert all(obj.most == 1 for obj in objects), [obj.most for obj in objects]
    assert all(len(obj.threads) >= 2 for obj in objects), [len(obj.threads) for obj in objects]


# --- slow readers and vanished peers ----------------------------------------------------------


class RawPeer:
    """The other end of one connection, by hand: reads at its own pace, answers pings when it reads."""

    def __init__(self, sock: Any, leftover: bytes, *, is_client: bool) -> None:
        self.sock = sock
        self.parser = Protocol(is_client, max_message_size=None, max_fragments=None)
        self.leftover = leftover
        self.messages = 0
        #: bytes read since we sent a ping, and how many of them came before its pong
        self.since_ping: Optional[int] = None
        self.pong_after: Optional[int] = None

    def read(self, size: int) -> bool:
        """Read up to ``size`` bytes and answer the pings in them; ``False`` at the end."""
        data, self.leftover = self.leftover, b""
        if not data:
            try:
                data = self.sock.recv(size)
            except OSError:
                return False
            if not data:
                return False
        if self.since_ping is not None:
            self.since_ping += len(data)
        for event in self.parser.receive_data(data):
            if isinstance(event, Message):
                self.messages += 1
            elif isinstance(event, Pong) and self.since_ping is not None and self.pong_after is None:
                self.pong_after = self.since_ping
        out = self.parser.data_to_send()
        if out:
            self.sock.sendall(b"".join(bytes(b) for b in out))
        return True


@pytest.mark.timeout(240)
def test_a_slow_but_alive_reader_is_never_closed_by_keepalive(server_factory: Any) -> None:
    """It takes 64 KiB every 0.5 s, for 60 s, with ping_interval = ping_timeout = 1 s, in both roles:
    the pongs are stuck behind our own backlog, which is not the peer's fault."""
    seconds = 60.0
    closes: List[int] = []
    failures: List[BaseException] = []

    def flood(ws: simplews.Connection) -> None:
        try:
            while True:
                ws.send(b"s" * 16 * 1024)
        except simplews.ConnectionClosed as exc:
            if exc.code != 1000:
                failures.append(exc)

    server = server_factory(
        on_open=flood, on_close=lambda ws, c, r: closes.append(c), ping_interval=1, ping_timeout=1, compression=None
    )
    stop = threading.Event()

    def slow(peer: RawPeer) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            assert peer.read(64 * 1024)
            time.sleep(0.5)

    # server role: our server floods a slow raw client
    client_sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    client_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client_sock.sendall(upgrade_request())
    head, leftover = read_head(client_sock)
    assert head.startswith(b"HTTP/1.1 101")
    slow_client = RawPeer(client_sock, leftover, is_client=True)
    # client role: our client floods a slow raw server
    with RawServer() as raw:
        accepted = raw.accept_in_thread(rcvbuf=64 * 1024)
        ws = simplews.connect(raw.url, ping_interval=1, ping_timeout=1, compression=None)
        server_sock, server_leftover = accepted.result()
        slow_server = RawPeer(server_sock, server_leftover, is_client=False)
        sender = threading.Thread(target=flood, args=(ws,), name="test-flood")
        sender.start()
        readers = [threading.Thread(target=slow, args=(peer,), name="test-slow") for peer in (slow_client, slow_server)]
        for thread in readers:
            thread.start()
        for thread in readers:
            thread.join(seconds + 60)
        assert not ws.closed and not failures, failures
        assert server.connections and not closes  # nothing closed on either side
        assert slow_client.messages > 100 and slow_server.messages > 100  # the slow peers did read
        ws.close(timeout=1)
        sender.join(30)
    client_sock.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("secure", [False, True], ids=["ws", "wss"])
@pytest.mark.parametrize("role", ["server", "client"])
def test_a_peer_that_vanishes_during_a_50_mib_send_is_found_out(role: str, secure: bool, tls_pair: Any, server_factory: Any) -> None:
    """The peer stops reading and writing: keepalive (1 s / 1 s) still judges it, the blocked send()
    raises ConnectionClosed and the connection closes with 1011."""
    server_ctx, client_ctx = tls_pair
    server_ctx.sslobject_class = client_ctx.sslobject_class = ssl.SSLObject
    big = b"v" * (50 * 1024 * 1024)
    outcome: List[BaseException] = []
    if role == "server":
        done = threading.Event()

        def send_big(ws: simplews.Connection) -> None:
            try:
                ws.send(big)
            except simplews.WebSocketError as exc:
                outcome.append(exc)
            done.set()

        server = server_factory(on_open=send_big, ping_interval=1, ping_timeout=1, compression=None,
                                ssl_context=server_ctx if secure else None)
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock: Any = client_ctx.wrap_socket(raw, server_hostname="localhost") if secure else raw
        sock.sendall(upgrade_request())
        assert read_head(sock)[0].startswith(b"HTTP/1.1 101")  # then silence: no reading, no writing
        assert done.wait(60)
        sock.close()
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]

        def vanishing_server() -> None:
            conn, _ = listener.accept()
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            peer: Any = server_ctx.wrap_socket(conn, server_side=True) if secure else conn
            head, _ = read_head(peer)
            key = next(line.split(b":", 1)[1].strip() for line in head.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key"))
            from simplews.handshake import accept_key

            peer.sendall(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + f"Sec-WebSocket-Accept: {accept_key(key.decode())}\r\n\r\n".encode()
            )
            held.append(peer)  # silence from now on

        held: List[Any] = []
        thread = threading.Thread(target=vanishing_server, name="test-vanishing")
        thread.start()
        url = f"{'wss' if secure else 'ws'}://localhost:{port}/"
        ws = simplews.connect(url, ssl_context=client_ctx, ping_interval=1, ping_timeout=1, compression=None)
        thread.join(30)
        try:
            ws.send(big)
        except simplews.WebSocketError as exc:
            outcome.append(exc)
        for peer in held:
            peer.close()
        listener.close()
    assert len(outcome) == 1 and isinstance(outcome[0], simplews.ConnectionClosedError), outcome
    assert outcome[0].code == 1011 and "keepalive" in outcome[0].reason


@pytest.mark.timeout(120)
def test_a_pong_goes_out_within_a_few_frames_while_another_thread_streams() -> None:
    """Our client streams a 32 MiB message in 64 KiB frames; the peer pings while it reads: the pong
    comes after at most the frames already on their way (small socket buffers on both sides)."""
    with RawServer() as raw:
        accepted = raw.accept_in_thread(rcvbuf=64 * 1024)
        sock = socket.create_connection(("127.0.0.1", int(raw.url.rsplit(":", 1)[1].strip("/"))), timeout=30)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        ws = simplews.connect(raw.url, sock=sock, compression=None, ping_interval=None, max_message_size=None)
        peer_sock, leftover = accepted.result()
        peer = RawPeer(peer_sock, leftover, is_client=False)
        sender = threading.Thread(target=ws.send, args=(b"f" * (32 * 1024 * 1024),), name="test-stream")
        sender.start()
        reads = 0
        probe = Protocol(False)
        while peer.pong_after is None:
            assert peer.read(64 * 1024), "connection ended"
            reads += 1
            if reads == 20:  # well inside the message: ping now
                probe.send_ping(b"are you there")
                peer_sock.sendall(b"".join(bytes(b) for b in probe.data_to_send()))
                peer.since_ping = 0
        frame = 64 * 1024 + 14
        assert peer.pong_after is not None and peer.pong_after <= 8 * frame, peer.pong_after // frame
        while peer.read(1 << 20) and peer.messages == 0:
            pass
        sender.join(60)
        assert peer.messages == 1  # and the message itself arrived whole
        ws.close(timeout=1)


# --- only our own exceptions -----------------------------------------------------------------


@pytest.mark.timeout(180)
def test_send_and_recv_raise_only_our_own_exceptions_whatever_the_peer_does(server_factory: Any, tls_pair: Any) -> None:
    """Peers that reset, half-close, or vanish at random moments while several threads send and
    receive: every exception out of send() and recv() is a simplews.WebSocketError."""
    server_ctx, client_ctx = tls_pair
    server_ctx.sslobject_class = client_ctx.sslobject_class = ssl.SSLObject
    seen: Dict[str, int] = {}
    foreign: List[BaseException] = []
    rng = random.Random(7)

    def misbehave(ws: simplews.Connection, message: Any) -> None:
        action = rng.choice(["echo", "echo", "close", "abort", "shutdown"])
        if action == "echo":
            ws.send(message)
        elif action == "close":
            ws.close(1000)
        elif action == "abort":
            ws.stream.shutdown()
        else:
            ws.sock.shutdown(socket.SHUT_WR)

    for secure in (False, True):
        server = server_factory(on_message=misbehave, ssl_context=server_ctx if secure else None, ping_interval=0.5, ping_timeout=0.5)
        url = f"{'wss' if secure else 'ws'}://localhost:{server.port}/"
        for _ in range(30):
            ws = simplews.connect(url, ssl_context=client_ctx, ping_interval=0.5, ping_timeout=0.5, close_timeout=2)

            def use(ws: simplews.Connection = ws) -> None:
                try:
                    for _ in range(200):
                        ws.send(b"x" * rng.randint(0, 100_000))
                        ws.recv(timeout=2)
                except BaseException as exc:
                    seen[type(exc).__name__] = seen.get(type(exc).__name__, 0) + 1
                    if not isinstance(exc, simplews.WebSocketError):
                        foreign.append(exc)

            threads = [threading.Thread(target=use, name="test-use") for _ in range(3)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            ws.close(timeout=2)
    assert not foreign, foreign[:3]
    assert seen  # the peers did misbehave
    seen_types: Set[str] = set(seen)
    assert seen_types <= {"ConnectionClosedOK", "ConnectionClosedError", "WebSocketTimeout"}, seen
