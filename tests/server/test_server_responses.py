"""process_response hooks and the Server header, over real sockets, seen by our client and independent ones."""

from __future__ import annotations

import logging
from typing import Any, List

import pytest
import websocket  # websocket-client, an independent peer
from server_raw import get, http, upgrade_request
from websockets.exceptions import InvalidStatus as PeerInvalidStatus
from websockets.sync.client import connect as peer_connect

import simplews
from simplews import Request, Response


def test_default_server_header_on_every_answer(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.send("hi"),
                            process_request=lambda r: (200, [], "page\n") if r.path == "/page" else None)  # fmt: skip
    expected = f"simplews/{simplews.__version__}"
    with peer_connect(server.url, open_timeout=10, proxy=None) as ws:
        assert ws.response.headers["Server"] == expected  # the 101
        assert ws.recv(timeout=10) == "hi"
    busy = server_factory(max_connections=1)
    with simplews.connect(busy.url):
        status, headers, _ = get(busy.port, "/")
        assert (status, headers["server"]) == (503, expected)  # the listener's answer at max_connections
    assert get(server.port, "/")[1]["server"] == expected  # the 426
    status, headers, body = get(server.port, "/page")
    assert (status, headers["server"], body) == (200, expected, b"page\n")


def test_server_header_chosen_or_left_out(server_factory: Any) -> None:
    custom = server_factory(server_header="edge")
    with simplews.connect(custom.url) as ws:
        assert ws.response is not None and ws.response.headers.get_all("Server") == ["edge"]
    none = server_factory(server_header=None)
    with simplews.connect(none.url) as ws:
        assert ws.response is not None and "Server" not in ws.response.headers
    assert "server" not in get(none.port, "/")[1]
    # a hook's own Server header is kept
    own = server_factory(process_request=lambda r: Response(204, simplews.Headers([("Server", "mine")]), b""))
    assert get(own.port, "/")[1]["server"] == "mine"


def test_process_response_adds_a_cookie_to_the_101(server_factory: Any) -> None:
    seen: List[int] = []

    def cookie(request: Request, response: Response) -> None:
        seen.append(response.status)
        if response.status == 101:
            response.headers.add("Set-Cookie", f"session={request.path_only.strip('/')}; HttpOnly")

    server = server_factory(on_open=lambda ws: ws.send("open"), process_response=cookie)
    with peer_connect(server.url + "s1", open_timeout=10, proxy=None) as ws:
        assert ws.response.headers["Set-Cookie"] == "session=s1; HttpOnly"
        assert ws.recv(timeout=10) == "open"
    ws2 = websocket.create_connection(server.url + "s2", timeout=10)
    try:
        assert ws2.getheaders()["set-cookie"] == "session=s2; HttpOnly"
        assert ws2.recv() == "open"
    finally:
        ws2.close()
    with simplews.connect(server.url + "s3") as ws3:
        assert ws3.response is not None and ws3.response.headers["Set-Cookie"] == "session=s3; HttpOnly"
    assert get(server.port, "/")[0] == 426  # rejections pass through the hook too
    assert seen == [101, 101, 101, 426]


def test_process_response_replaces_the_response(server_factory: Any) -> None:
    def refuse_night_owls(request: Request, response: Response) -> Any:
        if request.headers.get("X-Owl") == "yes":
            return 403, [("Content-Type", "text/plain")], "no owls\n"
        return None

    def stamp(request: Request, response: Response) -> None:
        response.headers.add("X-Stamp", str(response.status))  # the hooks run in order: sees the replacement

    server = server_factory(on_open=lambda ws: ws.send("open"), process_response=[refuse_night_owls, stamp])
    with pytest.raises(PeerInvalidStatus) as info:
        peer_connect(server.url, open_timeout=10, proxy=None, additional_headers={"X-Owl": "yes"})
    assert info.value.response.status_code == 403
    assert info.value.response.headers["X-Stamp"] == "403" and info.value.response.body == b"no owls\n"
    with simplews.connect(server.url) as ws:
        assert ws.response is not None and ws.response.headers["X-Stamp"] == "101"
        assert ws.recv(timeout=10) == "open"


def test_a_failing_or_forging_response_hook_gives_500(server_factory: Any, caplog: Any) -> None:
    caplog.set_level(logging.ERROR, logger="simplews")

    def broken(request: Request, response: Response) -> None:
        if request.path == "/raise":
            raise RuntimeError("hook bug")
        if request.path == "/forge":
            response.headers["Sec-WebSocket-Accept"] = "forged"

    server = server_factory(process_response=broken)
    for path in ("/raise", "/forge"):
        status, headers, _ = http(server.port, upgrade_request(path))
        assert status == 500 and headers["server"].startswith("simplews/")
    assert [r.getMessage() for r in caplog.records if r.name == "simplews"] == [
        "process_response failed for GET /raise", "process_response failed for GET /forge"]  # fmt: skip
    with simplews.connect(server.url) as ws:  # the server goes on
        ws.ping().wait(10)


def test_response_hooks_must_be_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        simplews.Server(port=0, process_response=["not a hook"])
