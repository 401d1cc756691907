"""Other transports: a Unix socket path, or a socket the caller already connected."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from typing import Any, Iterator, List

import pytest
from helpers import needs_unix_sockets, pump, wait_for

import simplews


@pytest.fixture
def sock_path() -> Iterator[str]:
    """A short Unix socket path (the limit is about 100 bytes)."""
    path = f"/tmp/simplews-{os.getpid()}-{os.urandom(4).hex()}.sock"
    yield path
    if os.path.exists(path):
        os.unlink(path)


@needs_unix_sockets
def test_unix_socket(sock_path: str) -> None:
    seen: List[Any] = []

    def on_open(ws: simplews.Connection) -> None:
        seen.append((ws.path, ws.headers["Host"]))

    with simplews.serve(on_open=on_open, on_message=lambda ws, m: ws.send(m), unix_socket=sock_path):
        with simplews.connect("ws://localhost/feed?id=3", unix_socket=sock_path) as ws:
            ws.send("over a unix socket")
            assert ws.recv(timeout=5) == "over a unix socket"
            assert ws.sock.family == socket.AF_UNIX
    assert seen == [("/feed?id=3", "localhost")]


@needs_unix_sockets
def test_wss_over_unix_socket(sock_path: str, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    with simplews.serve(on_message=lambda ws, m: ws.send(m), unix_socket=sock_path, ssl_context=server_tls):
        with simplews.connect("wss://localhost/", unix_socket=sock_path, ssl_context=client_tls) as ws:
            assert ws.tls is not None and type(ws.sock) is socket.socket
            ws.send("tls over unix")
            assert ws.recv(timeout=5) == "tls over unix"
    assert server_tls.sni_names == ["localhost"]  # type: ignore[attr-defined]


@needs_unix_sockets
def test_missing_unix_socket_is_a_clear_error(sock_path: str) -> None:
    with pytest.raises(simplews.ConnectError) as info:
        simplews.connect("ws://localhost/", unix_socket=sock_path)
    assert sock_path in str(info.value)


@needs_unix_sockets
def test_unix_socket_nobody_listens_is_refused(sock_path: str) -> None:
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(sock_path)  # bound but not listening, as a crashed server leaves it
    try:
        with pytest.raises(simplews.ConnectionRefused):
            simplews.connect("ws://localhost/", unix_socket=sock_path)
    finally:
        stale.close()


@needs_unix_sockets
def test_client_with_unix_socket_reconnects(sock_path: str) -> None:
    opened: List[simplews.Connection] = []

    def on_open(ws: simplews.Connection) -> None:
        opened.append(ws)
        if len(opened) == 1:
            ws.close(1012, "restart")

    with simplews.serve(on_message=lambda ws, m: ws.send(m), unix_socket=sock_path):
        with simplews.Client("ws://localhost/", on_open=on_open, unix_socket=sock_path, reconnect=True, reconnect_delay=0.01):
            assert wait_for(lambda: len(opened) >= 2, timeout=20)


def test_unix_socket_where_the_platform_has_none_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(socket, "AF_UNIX", raising=False)  # as on Windows (already gone under its emulation)
    with pytest.raises(simplews.ConnectError, match="Unix sockets are not available on this platform") as info:
        simplews.connect("ws://localhost/", unix_socket="/tmp/simplews-none.sock")
    assert "/tmp/simplews-none.sock" in str(info.value)


def test_connected_socket(echo_server: simplews.Server) -> None:
    raw = socket.create_connection(("127.0.0.1", echo_server.port), timeout=5)
    with simplews.connect(f"ws://127.0.0.1:{echo_server.port}/", sock=raw) as ws:
        assert ws.sock is raw
        ws.send("given socket")
        assert ws.recv(timeout=5) == "given socket"
    assert raw.fileno() == -1  # closing the connection closes the socket it was given


def test_connected_socket_is_wrapped_for_wss(tls_server: simplews.Server, client_tls: ssl.SSLContext) -> None:
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    with simplews.connect("wss://localhost/", sock=raw, ssl_context=client_tls) as ws:
        assert ws.tls is not None and type(ws.sock) is socket.socket
        ws.send("wrapped")
        assert ws.recv(timeout=5) == "wrapped"


def test_connected_tls_socket_is_refused_with_a_clear_error(tls_server: simplews.Server, client_tls: ssl.SSLContext) -> None:
    """TLS runs in memory over a plain socket (one SSL object is never entered by two threads): an
    ssl.SSLSocket cannot be used, and saying so beats failing later."""
    raw = socket.create_connection(("127.0.0.1", tls_server.port), timeout=5)
    tls = client_tls.wrap_socket(raw, server_hostname="localhost")
    try:
        with pytest.raises(TypeError, match="plain connected socket"):
            simplews.connect("wss://localhost/", sock=tls)
    finally:
        tls.close()


def test_socketpair_against_an_in_process_server_connection(echo_server: simplews.Server) -> None:
    """Any connected stream socket works, e.g. one end of a socketpair bridged to a server."""
    a, b = socket.socketpair()
    server_side = socket.create_connection(("127.0.0.1", echo_server.port), timeout=5)

    threads = [threading.Thread(target=pump, args=p, daemon=True) for p in ((b, server_side), (server_side, b))]
    for t in threads:
        t.start()
    with simplews.connect("ws://bridge/", sock=a) as ws:
        ws.send("through a socketpair")
        assert ws.recv(timeout=5) == "through a socketpair"
    for t in threads:
        t.join(10)
    b.close()
    server_side.close()


def test_sock_does_not_follow_redirects(server_factory: Any) -> None:
    server = server_factory(process_request=lambda r: (301, [("Location", "/elsewhere")], ""))
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect("ws://127.0.0.1/", sock=raw)
    assert info.value.status == 301 and raw.fileno() == -1
