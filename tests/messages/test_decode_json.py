"""recv(decode=...), send_json() / recv_json() in both roles, against simplews and the websockets library."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from websockets.sync.client import connect as ws_connect

import simplews


def _echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


@pytest.fixture(params=["simplews", "websockets"])
def echo_url(request: pytest.FixtureRequest, echo_server: simplews.Server, peer_server: Callable[..., str]) -> str:
    """An echo server: ours, or the websockets library's."""
    return echo_server.url if request.param == "simplews" else peer_server(_echo)


def test_client_decode_choices(echo_url: str) -> None:
    with simplews.connect(echo_url) as ws:
        ws.send("héllo")
        assert ws.recv(timeout=5, decode=False) == "héllo".encode()
        ws.send("héllo".encode())
        assert ws.recv(timeout=5, decode=True) == "héllo"
        ws.send("same")
        assert ws.recv(timeout=5, decode=True) == "same"
        ws.send(b"\x00\xff")
        assert ws.recv(timeout=5, decode=False) == b"\x00\xff"
        ws.send(b"\xff\xfe not utf-8")
        with pytest.raises(simplews.InvalidMessage) as info:
            ws.recv(timeout=5, decode=True)
        assert info.value.message == b"\xff\xfe not utf-8" and "not UTF-8" in str(info.value)
        ws.send("still open")  # a message the caller did not want does not end the connection
        assert ws.recv(timeout=5) == "still open"


def test_client_json(echo_url: str) -> None:
    with simplews.connect(echo_url) as ws:
        ws.send_json({"temp": 21.5, "tags": ["a", "é"]})
        assert ws.recv_json(timeout=5) == {"temp": 21.5, "tags": ["a", "é"]}
        ws.send_json([1, 2], separators=(",", ":"))
        assert ws.recv(timeout=5) == "[1,2]"
        ws.send(b'{"a": 1}')
        with pytest.raises(simplews.InvalidMessage, match="binary message"):
            ws.recv_json(timeout=5)
        ws.send("{not json")
        with pytest.raises(simplews.InvalidMessage, match="not JSON") as info:
            ws.recv_json(timeout=5)
        assert info.value.message == "{not json"
        with pytest.raises(TypeError, match="send_json"):
            ws.send_json({"x": object()})
        with pytest.raises(TypeError, match="mapping"):
            ws.send({"a": 1})  # type: ignore[arg-type]
        ws.send_json(None)
        assert ws.recv_json(timeout=5) is None


def test_server_decode_and_json_with_websockets_client(server_factory: Callable[..., simplews.Server]) -> None:
    def handler(ws: simplews.Connection) -> None:
        as_bytes = ws.recv(timeout=5, decode=False)
        as_text = ws.recv(timeout=5, decode=True)
        value = ws.recv_json(timeout=5)
        try:
            ws.recv_json(timeout=5)
        except simplews.InvalidMessage as exc:
            error = str(exc)
        ws.send_json({"bytes": list(as_bytes), "text": as_text, "value": value, "error": error})

    server = server_factory(handler)
    with ws_connect(server.url, compression=None) as peer:
        peer.send("é")
        peer.send("ü".encode())
        peer.send(json.dumps({"n": 3}))
        peer.send(b"\x01\x02")
        answer = json.loads(peer.recv(timeout=5))
    assert answer["bytes"] == list("é".encode())
    assert answer["text"] == "ü"
    assert answer["value"] == {"n": 3}
    assert "binary message of 2 bytes" in answer["error"]
