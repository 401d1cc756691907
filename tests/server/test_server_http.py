"""Points 1 and 2: the request object in every callback style, and HTTP answers on the WebSocket port."""

from __future__ import annotations

import queue
import socket
from typing import Any, List, Optional

import pytest
import websocket  # websocket-client, an independent peer
from server_raw import get, http, upgrade_request

import simplews


def describe(ws: simplews.Connection) -> tuple:
    """What a handler can read about its client."""
    req = ws.request
    assert req is not None
    assert req.subprotocol == ws.subprotocol
    return (req.path_only, req.query, req.headers.get("X-Token"), req.remote_address == ws.remote_address, req.subprotocol)


def test_request_in_every_callback_style(server_factory: Any) -> None:
    seen: queue.Queue[tuple] = queue.Queue()

    class PerConnection:
        def on_open(self, ws: simplews.Connection) -> None:
            seen.put(("class",) + describe(ws))

    def handler(ws: simplews.Connection) -> None:
        seen.put(("func",) + describe(ws))

    servers = [
        server_factory(on_open=lambda ws: seen.put(("callback",) + describe(ws)), subprotocols=["chat"]),
        server_factory(PerConnection, subprotocols=["chat"]),
        server_factory(handler, subprotocols=["chat"]),
    ]
    for server in servers:
        with simplews.connect(server.url + "room/7?user=ann&tag=a&tag=b", subprotocols=["chat"],
                              headers={"X-Token": "s3cret"}) as ws:
            assert ws.subprotocol == "chat"
            style, path, query, token, addr_ok, proto = seen.get(timeout=10)
            assert (path, query, token, addr_ok, proto) == ("/room/7", {"user": ["ann"], "tag": ["a", "b"]}, "s3cret", True, "chat")
            assert style in ("callback", "class", "func")


def test_request_remote_address_is_the_client(server_factory: Any) -> None:
    addrs: queue.Queue[Any] = queue.Queue()
    server = server_factory(on_open=lambda ws: addrs.put(ws.request.remote_address))
    with simplews.connect(server.url) as ws:
        assert addrs.get(timeout=10) == ws.local_address


def test_process_request_sees_request_and_answers_health_check(server_factory: Any) -> None:
    seen: List[simplews.Request] = []

    def process_request(request: simplews.Request) -> Optional[tuple]:
        seen.append(request)
        if request.path_only == "/healthz":
            return 200, [("Content-Type", "text/plain")], "ok\n"
        return None

    server = server_factory(on_message=lambda ws, m: ws.send(m), process_request=process_request)
    status, headers, body = get(server.port, "/healthz?verbose=1")
    assert (status, body, headers["content-type"]) == (200, b"ok\n", "text/plain")
    assert seen[-1].query == {"verbose": ["1"]} and seen[-1].headers["Accept"] == "text/html"
    # the same port still upgrades
    with simplews.connect(server.url + "ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    assert seen[-1].path == "/ws" and "Sec-WebSocket-Key" in seen[-1].headers


def test_process_request_serves_a_static_file(server_factory: Any, tmp_path: Any) -> None:
    page = tmp_path / "index.html"
    content = ("<!doctype html><title>t</title>" + "x" * 300_000).encode()
    page.write_bytes(content)

    def process_request(request: simplews.Request) -> Any:
        if request.path_only == "/":
            return simplews.Response(200, simplews.Headers({"Content-Type": "text/html"}), page.read_bytes())
        return None

    server = server_factory(process_request=process_request)
    status, headers, body = get(server.port, "/")
    assert status == 200 and headers["content-type"] == "text/html" and body == content


@pytest.mark.parametrize("token, status", [(None, 401), ("wrong", 403), ("good", 101)])
def test_process_request_authenticates_before_the_upgrade(server_factory: Any, token: Any, status: int) -> None:
    opened: List[Any] = []

    def process_request(request: simplews.Request) -> Any:
        given = request.headers.get("Authorization")
        if given is None:
            return 401, {"WWW-Authenticate": 'Bearer realm="feed"'}, b"login first\n"
        if given != "Bearer good":
            return 403, {}, b"forbidden\n"
        return None

    server = server_factory(on_open=opened.append, process_request=process_request)
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    if status == 101:
        with simplews.connect(server.url, headers=headers) as ws:
            ws.ping().wait(5)
        assert len(opened) == 1
        return
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(server.url, headers=headers)
    assert info.value.status == status and opened == []
    # an independent client sees the same refusal
    with pytest.raises(websocket.WebSocketBadStatusException) as wc:
        websocket.create_connection(server.url, timeout=10, header=[f"{k}: {v}" for k, v in headers.items()])
    assert wc.value.status_code == status


def test_plain_browser_get_gets_426(server_factory: Any) -> None:
    server = server_factory(on_message=lambda ws, m: None)
    status, headers, body = get(server.port, "/")
    assert status == 426 and headers["upgrade"] == "websocket" and b"WebSocket" in body
    # the server is unharmed
    with simplews.connect(server.url) as ws:
        assert ws.ping().wait(5)


def test_process_request_that_raises_gives_500_not_a_hang(server_factory: Any) -> None:
    def process_request(request: simplews.Request) -> Any:
        raise RuntimeError("bug in user code")

    server = server_factory(process_request=process_request)
    status, _, body = get(server.port, "/")
    assert status == 500 and b"bug" not in body
    status, _, _ = http(server.port, upgrade_request())
    assert status == 500


def test_process_request_with_a_bad_return_value_gives_500(server_factory: Any) -> None:
    server = server_factory(process_request=lambda request: ("not", "a response"))
    assert get(server.port, "/")[0] == 500


def test_garbage_and_early_close_never_hurt_the_server(server_factory: Any) -> None:
    server = server_factory(on_message=lambda ws, m: ws.send(m))
    assert http(server.port, b"\x16\x03\x01 not http at all\r\n\r\n")[0] == 400
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HT")  # then closes half-way
    with simplews.connect(server.url) as ws:
        ws.send("still fine")
        assert ws.recv(timeout=10) == "still fine"
