"""Point 3: origins, subprotocol selection, max_connections, handshake_timeout, max_header_size."""

from __future__ import annotations

import socket
import time
from typing import Any, List

import pytest
from helpers import wait_for
from server_raw import http, open_raw, read_response, upgrade_request

import simplews


def echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


def test_origins_allow_list(server_factory: Any) -> None:
    server = server_factory(on_message=echo, origins=["https://app.example"])
    with simplews.connect(server.url, origin="https://app.example") as ws:
        ws.send("in")
        assert ws.recv(timeout=10) == "in"
    for origin in ["https://evil.example", None]:
        with pytest.raises(simplews.InvalidStatus) as info:
            simplews.connect(server.url, origin=origin)
        assert info.value.status == 403


def test_origins_may_allow_clients_without_origin(server_factory: Any) -> None:
    server = server_factory(on_message=echo, origins=["https://app.example", None])
    with simplews.connect(server.url) as ws:
        assert ws.ping().wait(5)
    assert http(server.port, upgrade_request(extra="Origin: https://other.example\r\n"))[0] == 403


def test_subprotocol_preference_list(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.send(ws.subprotocol or "none"), subprotocols=["v2", "v1"])
    for offered, chosen in [(["v1", "v2"], "v2"), (["v1"], "v1"), (["v9"], None), (None, None)]:
        with simplews.connect(server.url, subprotocols=offered) as ws:
            assert ws.subprotocol == chosen
            assert ws.recv(timeout=10) == (chosen or "none")


def test_select_subprotocol_callback(server_factory: Any) -> None:
    calls: List[Any] = []

    def select(request: simplews.Request, offered: Any) -> Any:
        calls.append((request.path, list(offered)))
        if request.path == "/bad":
            return "never-offered"
        return offered[-1] if offered else None

    server = server_factory(on_open=lambda ws: ws.send(str(ws.subprotocol)), select_subprotocol=select)
    with simplews.connect(server.url + "x", subprotocols=["a", "b"]) as ws:
        assert ws.subprotocol == "b" and ws.recv(timeout=10) == "b"
    assert calls == [("/x", ["a", "b"])]
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(server.url + "bad", subprotocols=["a"])
    assert info.value.status == 400


def test_max_connections_answers_503_and_disturbs_nobody(server_factory: Any) -> None:
    server = server_factory(on_message=echo, max_connections=2)
    first = simplews.connect(server.url)
    second = simplews.connect(server.url)
    try:
        for _ in range(3):
            with pytest.raises(simplews.InvalidStatus) as info:
                simplews.connect(server.url)
            assert info.value.status == 503
            status, headers, _ = http(server.port, upgrade_request())
            assert status == 503 and headers["retry-after"] == "1"
        for ws in (first, second):
            ws.send("still here")
            assert ws.recv(timeout=10) == "still here"
    finally:
        first.close()
    assert wait_for(lambda: len(server.connections) == 1, timeout=10)
    with simplews.connect(server.url) as third:
        third.send("room again")
        assert third.recv(timeout=10) == "room again"
    second.close()


def test_slowloris_is_dropped_after_handshake_timeout(server_factory: Any) -> None:
    server = server_factory(on_message=echo, handshake_timeout=0.5)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    try:
        slow.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        got = b""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # one header byte at a time, never finishing
            try:
                slow.sendall(b"X")
            except OSError:
                break
            slow.settimeout(0.1)
            try:
                got = slow.recv(100)
                break  # b"" (closed) or data
            except socket.timeout:
                continue
            except OSError:
                break
        assert got == b""
        idle.settimeout(10)
        assert idle.recv(100) == b""  # sent nothing at all: dropped too
        with simplews.connect(server.url) as ws:  # everyone else is fine
            ws.send("ok")
            assert ws.recv(timeout=10) == "ok"
        assert wait_for(lambda: server._live_count() == 0, timeout=10)
    finally:
        slow.close()
        idle.close()


def test_max_header_size(server_factory: Any) -> None:
    server = server_factory(on_message=echo, max_header_size=2048)
    assert http(server.port, upgrade_request(extra=f"X-Big: {'a' * 4000}\r\n"))[0] == 431
    sock, _ = open_raw(server.port, extra=f"X-Fits: {'a' * 1000}\r\n")
    sock.close()
    default = server_factory(on_message=echo)
    assert http(default.port, upgrade_request(extra=f"X-Big: {'a' * 20000}\r\n"))[0] == 431


def test_oversized_head_sent_slowly_is_refused_without_reading_it_all(server_factory: Any) -> None:
    server = server_factory(on_message=echo, max_header_size=1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 2000)
        status, _, _ = read_response(sock)
    assert status == 431
