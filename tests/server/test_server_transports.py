"""Point 4: TLS, IPv6 and dual-stack, Unix sockets, a given socket, and immediate rebinding."""

from __future__ import annotations

import errno
import os
import socket
import ssl
from typing import Any, Iterator, List, Tuple

import pytest
import trustme
import websocket
from helpers import ipv6_loopback, needs_unix_sockets, wait_for
from server_raw import read_response

import simplews


def echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


@pytest.fixture(scope="module")
def tls() -> Iterator[Tuple[ssl.SSLContext, ssl.SSLContext, str]]:
    """(server context, client context, CA file) for 127.0.0.1/localhost."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost", "::1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    with ca.cert_pem.tempfile() as cafile:
        yield server_ctx, client_ctx, cafile


def test_tls_echo_with_our_client_and_websocket_client(server_factory: Any, tls: Any) -> None:
    server_ctx, client_ctx, cafile = tls
    server = server_factory(on_message=echo, ssl_context=server_ctx, process_request=_health)
    assert server.url.startswith("wss://")
    with simplews.connect(server.url, ssl_context=client_ctx) as ws:
        ws.send("secure" * 10_000)
        assert ws.recv(timeout=10) == "secure" * 10_000
    wc = websocket.create_connection(server.url, timeout=10, sslopt={"ca_certs": cafile})
    wc.send("wc")
    assert wc.recv() == "wc"
    wc.close()
    # an HTTPS health check on the same port
    with client_ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port), timeout=10),
                                server_hostname="127.0.0.1") as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock)[0] == 200


def test_tls_handshake_failure_does_not_hurt_the_server(server_factory: Any, tls: Any) -> None:
    server_ctx, client_ctx, _ = tls
    server = server_factory(on_message=echo, ssl_context=server_ctx)
    with pytest.raises(simplews.TLSError):
        simplews.connect(server.url)  # certifi's CAs do not trust the test CA
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")  # plain HTTP to a TLS port
        answer = b""
        try:
            while True:  # until the server closes (a hang would raise socket.timeout)
                chunk = sock.recv(100)
                if not chunk:
                    break
                answer += chunk
        except ConnectionResetError:
            pass
        assert not answer.startswith(b"HTTP/")  # at most a TLS alert, then closed
    with simplews.connect(server.url, ssl_context=client_ctx) as ws:
        ws.send("fine")
        assert ws.recv(timeout=10) == "fine"


def test_tls_connections_count_once_and_shut_down_with_1001(tls: Any) -> None:
    server_ctx, client_ctx, _ = tls
    server = simplews.serve(on_message=echo, port=0, ssl_context=server_ctx, max_connections=2)
    try:
        for _ in range(3):  # failed TLS handshakes give their slot back
            with pytest.raises(simplews.TLSError):
                simplews.connect(server.url)
        clients = [simplews.connect(server.url, ssl_context=client_ctx) for _ in range(2)]
        for ws in clients:
            ws.send("in")
            assert ws.recv(timeout=10) == "in"
        with pytest.raises(simplews.WebSocketError):  # over TLS the third is simply closed
            simplews.connect(server.url, ssl_context=client_ctx, open_timeout=10)
    finally:
        server.shutdown(timeout=10)
    for ws in clients:
        with pytest.raises(simplews.ConnectionClosedOK) as info:
            ws.recv(timeout=10)
        assert info.value.code == 1001


@pytest.mark.timeout(30)
def test_tls_reads_honour_their_timeout(server_factory: Any, tls: Any) -> None:
    """SSL reads ignore SO_RCVTIMEO in CPython; recv(timeout=) must still time out, on both sides
    (the keepalive thread's reads of idle connections take the same path)."""
    server_ctx, client_ctx, _ = tls
    results: List[Any] = []

    def handler(ws: simplews.Connection) -> None:
        try:
            ws.recv(timeout=0.2)  # the client sends nothing until it has timed out itself
        except simplews.WebSocketTimeout as exc:
            results.append(exc)
        for message in ws:
            ws.send(message)

    server = server_factory(handler, ssl_context=server_ctx, ping_interval=None)  # no traffic at all
    with simplews.connect(server.url, ssl_context=client_ctx, ping_interval=None) as ws:
        with pytest.raises(simplews.WebSocketTimeout):
            ws.recv(timeout=0.2)
        assert wait_for(lambda: len(results) == 1, timeout=20)
        assert ws.ping().wait(10)  # pongs still flow over the connection
        ws.send("still open")
        assert ws.recv(timeout=10) == "still open"


def _health(request: simplews.Request) -> Any:
    return (200, [], b"ok") if request.path == "/healthz" else None


needs_ipv6 = pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback")


@needs_ipv6
def test_ipv6_only(server_factory: Any) -> None:
    server = server_factory(on_message=echo, host="::1")
    assert server.url == f"ws://[::1]:{server.port}/"
    with simplews.connect(server.url) as ws:
        ws.send("six")
        assert ws.recv(timeout=10) == "six"
        assert ws.remote_address[0] == "::1"


@needs_ipv6
@pytest.mark.skipif(not socket.has_dualstack_ipv6(), reason="no dual-stack sockets")
def test_dual_stack(server_factory: Any) -> None:
    seen = []
    server = server_factory(on_message=echo, host="::", on_open=lambda ws: seen.append(ws.request.remote_address[0]))
    for host in ("127.0.0.1", "[::1]"):
        with simplews.connect(f"ws://{host}:{server.port}/") as ws:
            ws.send(host)
            assert ws.recv(timeout=10) == host
    assert seen == ["::ffff:127.0.0.1", "::1"]


@needs_unix_sockets
def test_unix_socket(server_factory: Any, tmp_path: Any) -> None:
    path = str(tmp_path / "ws.sock")
    server = server_factory(on_message=echo, unix_socket=path)
    with simplews.connect("ws://localhost/feed", unix_socket=path) as ws:
        ws.send("local")
        assert ws.recv(timeout=10) == "local"
    server.shutdown()
    assert not os.path.exists(path)


def test_unix_socket_where_the_platform_has_none_is_refused_at_bind(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.delattr(socket, "AF_UNIX", raising=False)  # as on Windows (already gone under its emulation)
    path = tmp_path / "ws.sock"
    with pytest.raises(OSError, match="Unix sockets are not available on this platform") as info:
        simplews.Server(on_message=echo, unix_socket=str(path))
    assert info.value.errno == errno.EAFNOSUPPORT and not path.exists()


def test_given_socket(server_factory: Any) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = server_factory(on_message=echo, sock=sock)
    assert server.port == port
    with simplews.connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("given")
        assert ws.recv(timeout=10) == "given"
    server.shutdown()
    assert sock.fileno() == -1  # the server owns and closes it


def test_restart_on_the_same_port_at_once() -> None:
    server = simplews.serve(on_message=echo, port=0)
    port = server.port
    try:
        for _ in range(3):  # each round leaves server-side connections in TIME_WAIT
            with simplews.connect(server.url) as ws:
                ws.send("x")
                assert ws.recv(timeout=10) == "x"
            server.shutdown()
            server = simplews.serve(on_message=echo, port=port)
            assert server.port == port
    finally:
        server.shutdown()
