"""ping() waiters and ws.latency in both roles, against simplews and the websockets library."""

from __future__ import annotations

import threading
from typing import Any, Callable, List

import pytest
from helpers import wait_for
from websockets.sync.client import connect as ws_connect

import simplews


def _echo(ws: Any) -> None:
    for message in ws:
        ws.send(message)


@pytest.mark.parametrize("peer", ["simplews", "websockets"])
def test_ping_wait_returns_the_round_trip_time(
    peer: str, echo_server: simplews.Server, peer_server: Callable[..., str]
) -> None:
    url = echo_server.url if peer == "simplews" else peer_server(_echo)
    with simplews.connect(url, ping_interval=None) as ws:
        assert ws.latency is None
        waiter = ws.ping(b"rtt?")
        rtt = waiter.wait(5)
        assert isinstance(rtt, float) and rtt > 0
        assert waiter.is_set() and waiter.rtt == rtt
        assert ws.latency == rtt
        first, second = ws.ping(), ws.ping()
        assert second.wait(5) and first.wait(0) is not None  # a pong answers every earlier ping too


def test_keepalive_pings_measure_latency(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url, ping_interval=0.05) as ws:
        assert wait_for(lambda: ws.latency is not None, timeout=10)
        assert ws.latency is not None and ws.latency > 0


def test_wait_returns_none_on_timeout_and_raises_once_closed(server_factory: Callable[..., simplews.Server]) -> None:
    def handler(ws: simplews.Connection) -> None:
        assert ws.recv(timeout=10) == "bye"
        ws.close(4000, "done")

    server = server_factory(handler, auto_pong=False, ping_interval=None)  # this server never answers pings
    with simplews.connect(server.url, ping_interval=None) as ws:
        waiter = ws.ping()
        assert waiter.wait(0.05) is None
        ws.send("bye")
        with pytest.raises(simplews.ConnectionClosed) as info:
            waiter.wait(10)
        assert info.value.code == 4000
        assert ws.latency is None


def test_wait_raises_when_aborted_from_another_thread(server_factory: Callable[..., simplews.Server]) -> None:
    server = server_factory(lambda ws: ws.recv(timeout=10), auto_pong=False, ping_interval=None)
    with simplews.connect(server.url, ping_interval=None) as ws:
        waiter = ws.ping()
        errors: List[BaseException] = []

        def wait() -> None:
            try:
                waiter.wait(10)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=wait)
        thread.start()
        ws.abort()
        thread.join(10)
        assert len(errors) == 1 and isinstance(errors[0], simplews.ConnectionClosedError) and errors[0].code == 1006


def test_server_side_ping_with_websockets_client(server_factory: Callable[..., simplews.Server]) -> None:
    results: List[Any] = []

    def handler(ws: simplews.Connection) -> None:
        results.append(ws.ping(b"from server").wait(5))
        results.append(ws.latency)
        ws.send("measured")
        ws.recv(timeout=5)

    server = server_factory(handler, ping_interval=None)
    with ws_connect(server.url, compression=None, ping_interval=None) as peer:
        assert peer.recv(timeout=5) == "measured"
    assert wait_for(lambda: len(results) == 2)
    assert results[0] > 0 and results[1] == results[0]


def test_round_trip_time_is_positive_on_a_coarse_clock(echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    import simplews.pings

    monkeypatch.setattr(simplews.pings, "_clock", lambda: 1000.0)  # a clock that never moves
    with simplews.connect(echo_server.url, ping_interval=None) as ws:
        rtt = ws.ping().wait(5)
    assert rtt is not None and rtt > 0
