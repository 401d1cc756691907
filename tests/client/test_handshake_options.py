"""Handshake options: extra headers, origin, subprotocols, User-Agent; what the server answered."""

from __future__ import annotations

import threading
from typing import Any, Dict, Iterator, List

import pytest
from websockets.sync.server import serve as ws_serve

import simplews


@pytest.fixture
def recording_server() -> Iterator[Any]:
    """A simplews server offering the ``chat`` and ``v2.json`` subprotocols that records request headers."""
    seen: List[Dict[str, Any]] = []

    def on_open(ws: simplews.Connection) -> None:
        seen.append({"headers": ws.headers, "subprotocol": ws.subprotocol})

    with simplews.serve(on_open=on_open, port=0, subprotocols=["v2.json", "chat"]) as server:
        server.seen = seen
        yield server


@pytest.fixture
def websockets_server() -> Iterator[str]:
    """The websockets library's server, adding a response header and choosing a subprotocol."""

    def handler(ws: Any) -> None:
        for message in ws:
            ws.send(message)

    def process_response(connection: Any, request: Any, response: Any) -> Any:
        response.headers["X-Served-By"] = "websockets"
        response.headers["Set-Cookie"] = "session=abc"
        return response

    server = ws_serve(handler, "127.0.0.1", 0, subprotocols=["chat"], process_response=process_response)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    server.shutdown()
    thread.join(10)


def test_extra_headers_as_dict(recording_server: Any) -> None:
    with simplews.connect(recording_server.url, headers={"X-Device": "pi-7", "Cookie": "a=1"}) as ws:
        assert ws.request.headers["X-Device"] == "pi-7"
    headers = recording_server.seen[0]["headers"]
    assert headers["X-Device"] == "pi-7" and headers["Cookie"] == "a=1"


def test_extra_headers_as_list_with_repeated_names(recording_server: Any) -> None:
    extra = [("X-Tag", "one"), ("X-Tag", "two"), ("x-tag", "three")]
    with simplews.connect(recording_server.url, headers=extra):
        pass
    assert recording_server.seen[0]["headers"].get_all("X-Tag") == ["one", "two", "three"]


def test_extra_headers_as_headers_object(recording_server: Any) -> None:
    with simplews.connect(recording_server.url, headers=simplews.Headers([("X-A", "1")])):
        pass
    assert recording_server.seen[0]["headers"]["X-A"] == "1"


@pytest.mark.parametrize("bad", [{"X-Bad": "a\r\nInjected: yes"}, {"Bad Name": "x"}, [("X", "a\nb")]])
def test_header_injection_is_refused_before_sending(recording_server: Any, bad: Any) -> None:
    with pytest.raises(simplews.LocalProtocolError):
        simplews.connect(recording_server.url, headers=bad)
    assert recording_server.seen == []


def test_origin(recording_server: Any) -> None:
    with simplews.connect(recording_server.url, origin="https://dashboard.example"):
        pass
    with simplews.connect(recording_server.url):
        pass
    assert recording_server.seen[0]["headers"]["Origin"] == "https://dashboard.example"
    assert "Origin" not in recording_server.seen[1]["headers"]


def test_origin_refused_by_server_is_invalid_status(server_factory: Any) -> None:
    server = server_factory(origins=["https://good.example"])
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(server.url, origin="https://evil.example")
    assert info.value.status == 403
    with simplews.connect(server.url, origin="https://good.example") as ws:
        assert ws.state is simplews.State.OPEN


def test_subprotocol_is_negotiated_and_readable(recording_server: Any) -> None:
    with simplews.connect(recording_server.url, subprotocols=["chat", "superchat"]) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.headers["Sec-WebSocket-Protocol"] == "chat"
    assert recording_server.seen[0]["headers"]["Sec-WebSocket-Protocol"] == "chat, superchat"
    assert recording_server.seen[0]["subprotocol"] == "chat"


def test_no_common_subprotocol(recording_server: Any) -> None:
    with simplews.connect(recording_server.url, subprotocols=["mqtt"]) as ws:
        assert ws.subprotocol is None


def test_invalid_subprotocol_name_is_refused(recording_server: Any) -> None:
    with pytest.raises(simplews.LocalProtocolError):
        simplews.connect(recording_server.url, subprotocols=["bad name"])


def test_default_user_agent(recording_server: Any) -> None:
    with simplews.connect(recording_server.url):
        pass
    agent = recording_server.seen[0]["headers"]["User-Agent"]
    assert agent.startswith(f"simplews/{simplews.__version__} Python/3.")


def test_custom_and_disabled_user_agent(recording_server: Any) -> None:
    with simplews.connect(recording_server.url, user_agent="sensor-fw/2.1"):
        pass
    with simplews.connect(recording_server.url, user_agent=None):
        pass
    with simplews.connect(recording_server.url, headers={"user-agent": "from-headers/1"}):
        pass
    seen = recording_server.seen
    assert seen[0]["headers"].get_all("User-Agent") == ["sensor-fw/2.1"]
    assert "User-Agent" not in seen[1]["headers"]
    assert seen[2]["headers"].get_all("User-Agent") == ["from-headers/1"]  # not doubled


def test_response_headers_and_subprotocol_from_an_independent_server(websockets_server: str) -> None:
    with simplews.connect(websockets_server, subprotocols=["chat"], headers={"X-Hello": "1"}) as ws:
        assert ws.subprotocol == "chat"
        assert ws.response.status == 101
        assert ws.response.headers["X-Served-By"] == "websockets"
        assert ws.headers["Set-Cookie"] == "session=abc"  # ws.headers: the response headers on a client
        assert "websockets" in ws.response.headers["Server"]
        assert ws.request.headers["X-Hello"] == "1" and ws.request.path == "/"
        ws.send("x")
        assert ws.recv(timeout=5) == "x"


def test_rejection_keeps_status_headers_and_body(server_factory: Any) -> None:
    server = server_factory(process_request=lambda r: (429, [("Retry-After", "30")], "slow down"))
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(server.url)
    assert info.value.status == 429
    assert info.value.response.headers["Retry-After"] == "30" and info.value.response.body == b"slow down"
    assert "429" in str(info.value)
