"""wait_closed(), abort() and Server.shutdown(code, reason) in both roles, against simplews and the websockets library."""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Tuple

import pytest
import websocket  # websocket-client
from helpers import wait_for
from websockets.exceptions import ConnectionClosed as PeerClosed
from websockets.sync.client import connect as ws_connect

import simplews


def test_wait_closed_from_another_thread(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url) as ws:
        assert ws.wait_closed(0.05) is False
        seen: List[Tuple[bool, Any]] = []
        thread = threading.Thread(target=lambda: seen.append((ws.wait_closed(10), ws.close_code)))
        thread.start()
        ws.close(1000, "bye")
        thread.join(10)
    assert seen == [(True, 1000)]


def test_wait_closed_when_the_peer_closes(peer_server: Callable[..., str]) -> None:
    url = peer_server(lambda peer: peer.close(4002, "peer done"))
    with simplews.connect(url) as ws:
        assert ws.wait_closed(10)  # nobody reads: the connection still sees the close and answers it
        assert (ws.close_code, ws.close_reason) == (4002, "peer done")


def test_server_abort_runs_on_close_once_with_1006(server_factory: Callable[..., simplews.Server]) -> None:
    closes: List[Tuple[int, str]] = []

    def on_message(ws: simplews.Connection, message: Any) -> None:
        ws.abort()
        ws.abort()  # twice: still one ending

    server = server_factory(on_message=on_message, on_close=lambda ws, code, reason: closes.append((code, reason)))
    with ws_connect(server.url, compression=None) as peer:
        peer.send("abort me")
        with pytest.raises(PeerClosed) as info:
            peer.recv(timeout=10)
    assert info.value.rcvd is None  # no close frame: the TCP connection was dropped
    assert wait_for(lambda: closes == [(1006, "")])


def test_client_abort_runs_on_close_once_with_1006(peer_server: Callable[..., str]) -> None:
    ended = threading.Event()
    peer_saw: List[Any] = []

    def handler(peer: Any) -> None:
        try:
            peer.recv(timeout=10)
        except PeerClosed as exc:
            peer_saw.append(exc.rcvd)
        ended.set()

    closes: List[Tuple[int, str]] = []
    client = simplews.Client(peer_server(handler), on_close=lambda ws, code, reason: closes.append((code, reason)))
    client.start()
    try:
        assert wait_for(lambda: client.ws is not None, timeout=10)
        ws = client.ws
        assert ws is not None
        ws.abort()
        assert wait_for(lambda: closes == [(1006, "")], timeout=10)
        assert ws.close_code == 1006 and ws.closed
        assert ended.wait(10) and peer_saw == [None]
    finally:
        client.stop(10)


@pytest.mark.parametrize("peer", ["simplews", "websocket-client"])
def test_shutdown_with_a_chosen_code(peer: str) -> None:
    server = simplews.serve(on_message=lambda ws, m: None, port=0)
    try:
        if peer == "simplews":
            ws = simplews.connect(server.url)
            server.shutdown(code=4000, reason="maintenance")
            with pytest.raises(simplews.ConnectionClosedError) as info:
                ws.recv(timeout=10)
            assert (info.value.code, info.value.reason) == (4000, "maintenance")
            ws.close()
        else:
            sock = websocket.create_connection(server.url, timeout=10)
            stopping = threading.Thread(target=server.shutdown, kwargs={"code": 1012, "reason": "restarting"})
            stopping.start()
            opcode, data = sock.recv_data(control_frame=True)
            sock.shutdown()  # its close() leaves the socket open once it answered the close frame
            stopping.join(10)
            assert opcode == websocket.ABNF.OPCODE_CLOSE
            assert data == (1012).to_bytes(2, "big") + b"restarting"
    finally:
        server.shutdown()


def test_shutdown_default_is_1001_with_no_reason(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url) as ws:
        echo_server.shutdown()
        with pytest.raises(simplews.ConnectionClosedOK) as info:
            ws.recv(timeout=10)
    assert (info.value.code, info.value.reason) == (1001, "")


def test_shutdown_refuses_a_code_no_client_may_see(echo_server: simplews.Server) -> None:
    with pytest.raises(simplews.LocalProtocolError):
        echo_server.shutdown(code=1006)
    with simplews.connect(echo_server.url) as ws:  # still serving
        ws.send("up")
        assert ws.recv(timeout=5) == "up"
