"""on_ping / on_pong hooks and auto_pong in both roles, against simplews and the websockets library."""

from __future__ import annotations

import threading
from typing import Any, Callable, List, Tuple

from helpers import wait_for
from websockets.sync.client import connect as ws_connect

import simplews


def _record(log: List[Tuple[str, Any, str]], kind: str) -> Callable[..., None]:
    return lambda ws, data: log.append((kind, data, threading.current_thread().name))


def test_server_hooks_run_in_order_on_the_connection_thread(server_factory: Callable[..., simplews.Server]) -> None:
    log: List[Tuple[str, Any, str]] = []
    server = server_factory(on_message=_record(log, "message"), on_ping=_record(log, "ping"), on_pong=_record(log, "pong"))
    with ws_connect(server.url, compression=None, ping_interval=None) as peer:
        peer.send("a")
        assert peer.ping(b"p1").wait(5)
        peer.send("b")
        peer.pong(b"unsolicited")
        peer.send("c")
        assert wait_for(lambda: len(log) == 5)
    assert [(kind, data) for kind, data, _ in log] == [
        ("message", "a"), ("ping", b"p1"), ("message", "b"), ("pong", b"unsolicited"), ("message", "c"),
    ]  # fmt: skip
    threads = {name for _, _, name in log}
    assert len(threads) == 1 and threads.pop().startswith("simplews-conn")


def test_a_slow_hook_does_not_hold_up_the_automatic_pong(server_factory: Callable[..., simplews.Server]) -> None:
    release = threading.Event()
    entered = threading.Event()

    def on_ping(ws: simplews.Connection, data: bytes) -> None:
        entered.set()
        release.wait(10)

    server = server_factory(on_ping=on_ping)
    try:
        with ws_connect(server.url, compression=None, ping_interval=None) as peer:
            assert peer.ping(b"first").wait(5)
            assert entered.wait(5)
            assert peer.ping(b"while the hook runs").wait(5)  # answered at once, by the reader
            release.set()
    finally:
        release.set()


def test_client_pong_hook_for_keepalive_pings_runs_on_the_client_thread(peer_server: Callable[..., str]) -> None:
    log: List[Tuple[str, Any, str]] = []
    url = peer_server(lambda peer: [peer.send(m) for m in peer])
    client = simplews.Client(url, on_pong=_record(log, "pong"), ping_interval=0.05).start()
    try:
        assert wait_for(lambda: len(log) >= 2, timeout=10)
    finally:
        client.stop(10)
    assert {name for _, _, name in log} == {"simplews-client"}  # never the keepalive scheduler's thread
    assert all(kind == "pong" and len(data) == 4 for kind, data, _ in log)


def test_client_ping_hook_with_a_simplews_server(server_factory: Callable[..., simplews.Server]) -> None:
    log: List[Tuple[str, Any, str]] = []

    def on_open(ws: simplews.Connection) -> None:
        ws.send("one")
        ws.ping(b"hello").wait(5)
        ws.send("two")

    server = server_factory(on_open=on_open)
    client = simplews.Client(server.url, on_message=_record(log, "message"), on_ping=_record(log, "ping")).start()
    try:
        assert wait_for(lambda: len(log) == 3, timeout=10)
    finally:
        client.stop(10)
    assert [(kind, data) for kind, data, _ in log] == [("message", "one"), ("ping", b"hello"), ("message", "two")]


def test_auto_pong_off_lets_the_application_answer(server_factory: Callable[..., simplews.Server]) -> None:
    def on_ping(ws: simplews.Connection, data: bytes) -> None:
        if data != b"ignore me":
            ws.pong(data)

    server = server_factory(on_ping=on_ping, auto_pong=False, ping_interval=None)
    with ws_connect(server.url, compression=None, ping_interval=None) as peer:
        assert not peer.ping(b"ignore me").wait(0.2)
        assert peer.ping(b"answer me").wait(5)


def test_a_hook_that_raises_goes_to_on_error(server_factory: Callable[..., simplews.Server]) -> None:
    errors: List[BaseException] = []

    def on_ping(ws: simplews.Connection, data: bytes) -> None:
        raise ValueError("hook failed")

    server = server_factory(on_ping=on_ping, on_message=lambda ws, m: ws.send(m), on_error=lambda ws, exc: errors.append(exc))
    with ws_connect(server.url, compression=None, ping_interval=None) as peer:
        assert peer.ping(b"x").wait(5)
        peer.send("still served")
        assert peer.recv(timeout=5) == "still served"
    assert [str(e) for e in errors] == ["hook failed"]
