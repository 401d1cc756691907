"""The client's address behind a real HAProxy: its PROXY v1 line, and X-Forwarded-For / Forwarded on a live server."""

from __future__ import annotations

import ast
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest
from haproxy import HAProxy, haproxy_binary
from helpers import ipv6_loopback
from server_raw import read_frame, read_response, upgrade_request

import simplews
from simplews.forwarded import TrustedProxies, client_address, parse_proxy_v1


@pytest.fixture
def start_haproxy(tmp_path: Path) -> Iterator[Callable[[str], HAProxy]]:
    """Start HAProxy processes with given configuration sections; all are stopped after the test."""
    binary = haproxy_binary()
    if binary is None:
        pytest.skip("haproxy is not installed and could not be (needs apt-get as root; see .ci/run)")
    started: List[HAProxy] = []

    def start(sections: str) -> HAProxy:
        workdir = tmp_path / f"haproxy{len(started)}"
        workdir.mkdir()
        proxy = HAProxy(binary, workdir)
        started.append(proxy)
        proxy.start(sections)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


# --- PROXY protocol v1, as HAProxy sends it ------------------------------------------------------


def next_proxied(backend: socket.socket, size: int) -> Tuple[Optional[Tuple[str, int]], bytes]:
    """The source address in the PROXY line of the next connection carrying ``size`` bytes, and those bytes.

    Connections that end without data (or are reset) are skipped: the probes that saw HAProxy start.
    """
    for _ in range(10):
        conn, _ = backend.accept()
        with conn:
            conn.settimeout(10)
            data = b""
            for _ in range(100):
                found = parse_proxy_v1(data)
                if found is not None and len(data) - found[1] >= size:
                    return found[0], data[found[1] :]
                try:
                    chunk = conn.recv(4096)
                except ConnectionResetError:  # a probe may end with a reset instead of a FIN
                    break
                if not chunk:
                    break
                data += chunk
    raise AssertionError("no proxied connection with data")


def test_haproxy_send_proxy_tcp4_tcp6_and_unknown(start_haproxy: Callable[[str], HAProxy]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as backend:
        backend.settimeout(10)
        binds = ["127.0.0.1:{port}", "unix@{dir}/front.sock"] + (["[::1]:{port}"] if ipv6_loopback() else [])
        proxy = start_haproxy(
            "frontend f\n    mode tcp\n" + "".join(f"    bind {b}\n" for b in binds) + "    default_backend b\n"
            f"backend b\n    mode tcp\n    server s 127.0.0.1:{backend.getsockname()[1]} send-proxy\n"
        )
        clients: List[Tuple[socket.socket, Any]] = []
        v4 = socket.socket()
        v4.bind(("127.0.0.2", 0))  # not the proxy's own address
        clients.append((v4, ("127.0.0.1", proxy.port)))
        clients.append((socket.socket(socket.AF_UNIX), str(proxy.workdir / "front.sock")))
        if ipv6_loopback():
            clients.append((socket.socket(socket.AF_INET6), ("::1", proxy.port)))
        for client, address in clients:
            with client:
                client.settimeout(10)
                client.connect(address)
                client.sendall(b"GET / HTTP/1.1\r\n")
                source, rest = next_proxied(backend, 16)
                assert source == (None if client.family == socket.AF_UNIX else client.getsockname()[:2])
                assert rest == b"GET / HTTP/1.1\r\n"  # what follows the line is the client's, untouched


# --- X-Forwarded-For and Forwarded, on a live simplews server -------------------------------------


@pytest.fixture
def address_server(server_factory: Any) -> Callable[[str], simplews.Server]:
    """A server whose request hook replaces ``remote_address`` by :func:`client_address` (127.0.0.1 trusted)."""
    trusted = TrustedProxies(["127.0.0.1"])

    def make(header: str) -> simplews.Server:
        def hook(request: simplews.Request) -> None:
            request.remote_address = client_address(request.remote_address, request.headers, trusted, header=header)

        return server_factory(on_open=lambda ws: ws.send(repr(ws.request.remote_address)), process_request=hook)

    return make


def seen_as(port: int, source: str, extra: str = "", host: str = "127.0.0.1") -> str:
    """Open a WebSocket from ``source`` to ``host:port`` and return what the server says our address is."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect((host, port))
        sock.sendall(upgrade_request("/", host, extra))
        status, _, rest = read_response(sock)
        assert status == 101
        frame = read_frame(sock, bytearray(rest))
        assert frame is not None and frame[0] == 0x1
        return frame[1].decode()


def http_frontend(server: simplews.Server, directive: str) -> str:
    binds = "    bind 127.0.0.1:{port}\n" + ("    bind [::1]:{port}\n" if ipv6_loopback() else "")
    return (
        f"frontend f\n    mode http\n{binds}    {directive}\n    default_backend b\n"
        f"backend b\n    mode http\n    server s 127.0.0.1:{server.port}\n"
    )


def test_x_forwarded_for_written_by_haproxy(start_haproxy: Callable[[str], HAProxy], address_server: Any) -> None:
    server = address_server("X-Forwarded-For")
    proxy = start_haproxy(http_frontend(server, "option forwardfor"))
    assert seen_as(proxy.port, "127.0.0.2") == "('127.0.0.2', 0)"
    # what a client writes itself is left of the proxy's entry: never reached
    assert seen_as(proxy.port, "127.0.0.2", "X-Forwarded-For: 6.6.6.6\r\n") == "('127.0.0.2', 0)"
    if ipv6_loopback():
        assert seen_as(proxy.port, "::1", host="::1") == "('::1', 0)"
    # straight to the server, the header comes from an untrusted peer and is ignored
    direct = seen_as(server.port, "127.0.0.2", "X-Forwarded-For: 6.6.6.6\r\n")
    assert direct.startswith("('127.0.0.2', ") and not direct.endswith(" 0)")


def test_forwarded_written_by_haproxy(start_haproxy: Callable[[str], HAProxy], address_server: Any) -> None:
    server = address_server("Forwarded")
    proxy = start_haproxy(http_frontend(server, "http-request add-header Forwarded for=%[src]"))
    assert seen_as(proxy.port, "127.0.0.2") == "('127.0.0.2', 0)"
    assert seen_as(proxy.port, "127.0.0.2", "Forwarded: for=6.6.6.6\r\n") == "('127.0.0.2', 0)"
    # the proxy writes Forwarded, so an X-Forwarded-For is the client's own and is not read
    assert seen_as(proxy.port, "127.0.0.2", "X-Forwarded-For: 6.6.6.6\r\n") == "('127.0.0.2', 0)"


# --- the same, as server options: proxy_protocol=, trusted_proxies=, forwarded_header= ------------


def addresses(ws: simplews.Connection) -> None:
    """Tell the client what the server sees: the client's address, the socket's peer, the connection's address."""
    assert ws.request is not None
    ws.send(repr((ws.request.remote_address, ws.request.peer_address, ws.remote_address)))


def test_proxy_protocol_option_behind_haproxy(start_haproxy: Callable[[str], HAProxy], server_factory: Any) -> None:
    server = server_factory(on_open=addresses, proxy_protocol=True, trusted_proxies=["127.0.0.1"])
    proxy = start_haproxy(
        "frontend f\n    mode tcp\n    bind 127.0.0.1:{port}\n    default_backend b\n"
        f"backend b\n    mode tcp\n    server s 127.0.0.1:{server.port} send-proxy\n"
    )
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", proxy.port))
        sock.sendall(upgrade_request("/"))
        status, _, rest = read_response(sock)
        assert status == 101
        frame = read_frame(sock, bytearray(rest))
        assert frame is not None
        client, peer, conn_address = ast.literal_eval(frame[1].decode())  # a repr of tuples of str and int
        assert client == sock.getsockname()[:2] == conn_address  # the address in HAProxy's PROXY line
        assert peer[0] == "127.0.0.1" and peer != client  # the socket's peer is HAProxy
    # straight to the server, without the line: dropped unanswered; the server goes on
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(upgrade_request("/"))
        assert sock.recv(100) == b""
    # a PROXY line from a peer that is not a trusted proxy is not believed: dropped too
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind(("127.0.0.2", 0))
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"PROXY TCP4 6.6.6.6 127.0.0.1 1111 80\r\n" + upgrade_request("/"))
        assert sock.recv(100) == b""
    assert seen_as(proxy.port, "127.0.0.2").startswith("(('127.0.0.2', ")


@pytest.mark.parametrize("header, directive", [
    ("X-Forwarded-For", "option forwardfor"),
    ("Forwarded", "http-request add-header Forwarded for=%[src]"),
])  # fmt: skip
def test_trusted_proxies_option_behind_haproxy(
    start_haproxy: Callable[[str], HAProxy], server_factory: Any, header: str, directive: str
) -> None:
    server = server_factory(on_open=addresses, trusted_proxies=["127.0.0.0/30"], forwarded_header=header)
    proxy = start_haproxy(http_frontend(server, directive))
    spoof = f"{header}: {'for=' if header == 'Forwarded' else ''}6.6.6.6\r\n"
    client, peer, conn_address = ast.literal_eval(seen_as(proxy.port, "127.0.0.5", spoof))
    assert client == ("127.0.0.5", 0) == conn_address and peer[0] == "127.0.0.1"
    # 127.0.0.5 is not a trusted proxy: what it says of itself is ignored
    client, peer, conn_address = ast.literal_eval(seen_as(server.port, "127.0.0.5", spoof))
    assert client == peer == conn_address and client[0] == "127.0.0.5"


def test_forwarded_options_are_checked() -> None:
    with pytest.raises(ValueError, match="forwarded_header"):
        simplews.Server(port=0, forwarded_header="X-Real-IP")
