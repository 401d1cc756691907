"""source_address= and socket_options= of connect() and Client, and socket_options= of serve(), on real sockets."""

from __future__ import annotations

import ast
import socket
from typing import Any, List

import pytest
from helpers import wait_for

import simplews

from .conftest import Tinyproxy

KEEPALIVE = [(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1), (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 7),
             (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 3)]  # fmt: skip


def sockopts(sock: socket.socket) -> tuple:
    """The options these tests set, as the kernel reports them."""
    return (
        sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
        sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY),
    )


@pytest.fixture
def address_server(server_factory: Any) -> simplews.Server:
    """Tells each client the address it came from and the options of the server's socket."""
    return server_factory(on_open=lambda ws: ws.send(repr((ws.remote_address, sockopts(ws.sock)))))


def test_source_address_is_the_local_end(address_server: simplews.Server) -> None:
    with simplews.connect(address_server.url, source_address=("127.0.0.2", 0)) as ws:
        seen, _ = ast.literal_eval(ws.recv(timeout=10))
        assert seen[0] == "127.0.0.2" and tuple(ws.local_address) == tuple(seen)
    got: List[Any] = []
    on_message = lambda ws, m: got.append(ast.literal_eval(m))  # noqa: E731
    with simplews.Client(address_server.url, on_message=on_message, source_address=("127.0.0.3", 0)):
        assert wait_for(lambda: got, timeout=20)
    assert got[0][0][0] == "127.0.0.3"


def test_socket_options_on_the_client_socket(address_server: simplews.Server) -> None:
    with simplews.connect(address_server.url, socket_options=KEEPALIVE) as ws:
        assert sockopts(ws.sock)[:3] == (1, 7, 3)
        assert sockopts(ws.sock)[3] != 0  # TCP_NODELAY stays on by default
    with simplews.connect(address_server.url, socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)]) as ws:
        assert sockopts(ws.sock)[3] == 0  # the caller's word wins over the default
        ws.recv(timeout=10)


def test_socket_options_on_accepted_sockets(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.send(repr(sockopts(ws.sock))), socket_options=KEEPALIVE)
    with simplews.connect(server.url) as ws:
        assert ast.literal_eval(ws.recv(timeout=10))[:3] == (1, 7, 3)
    plain = server_factory(on_open=lambda ws: ws.send(repr(sockopts(ws.sock))))
    with simplews.connect(plain.url) as ws:
        options = ast.literal_eval(ws.recv(timeout=10))
        assert options[0] == 0  # no keepalive unless asked
        assert options[3] != 0  # TCP_NODELAY on by default, as on the client: no Nagle stalls between messages
    nagle = server_factory(on_open=lambda ws: ws.send(repr(sockopts(ws.sock))),
                           socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)])  # fmt: skip
    with simplews.connect(nagle.url) as ws:
        assert ast.literal_eval(ws.recv(timeout=10))[3] == 0  # the caller's word wins over the default


def test_unusable_source_address_is_a_connect_error(address_server: simplews.Server) -> None:
    with pytest.raises(simplews.ConnectError, match="cannot connect"):
        simplews.connect(address_server.url, source_address=("192.0.2.1", 0), open_timeout=10)


def test_source_address_applies_to_the_socket_to_the_proxy(proxy: Tinyproxy, address_server: simplews.Server) -> None:
    # the proxy allows 127.0.0.1 only: from 127.0.0.2 it refuses, and its log names that address
    with pytest.raises(simplews.ProxyError, match="403"):
        simplews.connect(address_server.url, proxy=f"http://127.0.0.1:{proxy.port}", source_address=("127.0.0.2", 0))
    assert "127.0.0.2" in proxy.log_text()
    with simplews.connect(address_server.url, proxy=f"http://127.0.0.1:{proxy.port}", source_address=("127.0.0.1", 0),
                          socket_options=KEEPALIVE) as ws:  # fmt: skip
        assert sockopts(ws.sock)[:3] == (1, 7, 3)
        seen, _ = ast.literal_eval(ws.recv(timeout=10))
        assert seen[0] == "127.0.0.1"
