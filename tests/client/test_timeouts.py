"""Timeouts and connection failures, each with its own clear exception."""

from __future__ import annotations

import socket
import threading
from typing import Any, Iterator, List

import pytest
from helpers import wait_for

import simplews
from simplews import transport

from .conftest import accept_handshake, read_request


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose accept queue is full, so new SYNs are dropped and connect() hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held: List[socket.socket] = []
    try:
        for _ in range(64):
            s = socket.socket()
            s.settimeout(0.5)
            try:
                s.connect(("127.0.0.1", port))
            except socket.timeout:
                s.close()
                if held:  # the queue is full (a first timeout with nothing held is only a slow machine)
                    break
                continue
            held.append(s)
        else:
            pytest.skip("this kernel never drops SYNs on a full accept queue")
        yield port
    finally:
        for s in held:
            s.close()
        listener.close()


def test_exception_classes_are_distinct() -> None:
    classes = [simplews.HostNotFound, simplews.ConnectionRefused, simplews.OpenTimeout, simplews.ProxyError, simplews.TLSError]
    for a in classes:
        for b in classes:
            assert a is b or not issubclass(a, b)
    assert issubclass(simplews.OpenTimeout, TimeoutError) and issubclass(simplews.ConnectionRefused, OSError)


def test_refused_connection() -> None:
    port = _dead_port()
    with pytest.raises(simplews.ConnectionRefused) as info:
        simplews.connect(f"ws://127.0.0.1:{port}/")
    assert f"127.0.0.1:{port}" in str(info.value)


def test_unresolvable_host_name_fails_locally() -> None:
    # a label longer than 63 characters cannot be a DNS name: the lookup fails without any query
    host = "x" * 64 + ".example"
    with pytest.raises(simplews.HostNotFound) as info:
        simplews.connect(f"ws://{host}/")
    assert host in str(info.value)


def test_dns_failure_from_the_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    # what the system resolver raises for an unknown name (NXDOMAIN), without asking a DNS server
    def nxdomain(host: Any, *args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(transport.socket, "getaddrinfo", nxdomain)
    with pytest.raises(simplews.HostNotFound) as info:
        simplews.connect("ws://no-such-host.invalid/")
    assert "no-such-host.invalid" in str(info.value) and "not known" in str(info.value)


def test_open_timeout_while_tcp_connecting(full_backlog: int) -> None:
    with pytest.raises(simplews.OpenTimeout) as info:
        simplews.connect(f"ws://127.0.0.1:{full_backlog}/", open_timeout=0.5)
    assert f"127.0.0.1:{full_backlog}" in str(info.value)


def test_open_timeout_while_waiting_for_the_handshake(raw_peer: Any) -> None:
    peer = raw_peer(lambda conn: read_request(conn) and conn.recv(1))  # reads the request, never answers
    with pytest.raises(simplews.OpenTimeout) as info:
        simplews.connect(f"ws://127.0.0.1:{peer.port}/", open_timeout=0.5)
    assert "handshake" in str(info.value)


def test_open_timeout_bounds_the_whole_opening_not_each_read(raw_peer: Any) -> None:
    """A peer that trickles its answer a byte at a time cannot stretch the opening forever."""
    stop = threading.Event()

    def trickle(conn: socket.socket) -> None:
        read_request(conn)
        for byte in b"HTTP/1.1 101 Switching Protocols\r\n" + b"X-Slow: " + b"a" * 10_000:
            if stop.wait(0.05):
                return
            conn.sendall(bytes([byte]))

    peer = raw_peer(trickle)
    try:
        with pytest.raises(simplews.OpenTimeout):
            simplews.connect(f"ws://127.0.0.1:{peer.port}/", open_timeout=1.0)
    finally:
        stop.set()


def test_recv_timeout_leaves_the_connection_usable(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url) as ws:
        with pytest.raises(simplews.WebSocketTimeout):
            ws.recv(timeout=0.1)
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0)
        ws.send("after timeout")
        assert ws.recv(timeout=5) == "after timeout"


def _silent_after_handshake(conn: socket.socket) -> None:
    accept_handshake(conn)
    while conn.recv(65536):
        pass


@pytest.mark.parametrize("how", ["option", "argument"])
def test_close_timeout_bounds_close_on_a_silent_peer(raw_peer: Any, how: str) -> None:
    peer = raw_peer(_silent_after_handshake)
    ws = simplews.connect(
        f"ws://127.0.0.1:{peer.port}/", close_timeout=0.3 if how == "option" else 60, ping_interval=None
    )
    done = threading.Event()

    def close() -> None:
        if how == "option":
            ws.close()
        else:
            ws.close(timeout=0.3)
        done.set()

    thread = threading.Thread(target=close)
    thread.start()
    assert done.wait(10), "close() did not give up on a silent peer"
    thread.join(10)
    assert ws.closed and ws.close_code == 1006  # gave up on the silent peer: no close frame came back


def test_close_timeout_none_still_ends_when_peer_drops(raw_peer: Any) -> None:
    def drop_after_close(conn: socket.socket) -> None:
        accept_handshake(conn)
        conn.recv(65536)  # our close frame
        conn.close()  # no close frame back, just FIN

    peer = raw_peer(drop_after_close)
    ws = simplews.connect(f"ws://127.0.0.1:{peer.port}/", close_timeout=None, ping_interval=None)
    ws.close()
    assert wait_for(lambda: ws.closed, timeout=10) and ws.close_code == 1006
