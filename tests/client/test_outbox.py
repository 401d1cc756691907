"""A Client's outbox over real sockets: kept while disconnected, drained in order after on_open, handed back by stop()."""

from __future__ import annotations

import queue
import socket
import threading
from typing import Any, Iterator, List, Tuple

import pytest
from helpers import wait_for
from websockets.sync.server import ServerConnection
from websockets.sync.server import serve as peer_serve

import simplews
from simplews import Outbox, OutboxFull

BIG = b"B" * (32 << 20)  # more than loopback socket buffers hold: a send of it blocks while the peer does not read


@pytest.fixture
def gated_peer() -> Iterator[Tuple[str, threading.Event, queue.Queue[List[Any]]]]:
    """A websockets server that reads nothing until released, and reports each connection's messages.

    With max_queue=1 it stops reading at once, so TCP pushes back on the sender.
    """
    release = threading.Event()
    received: queue.Queue[List[Any]] = queue.Queue()

    def handler(ws: ServerConnection) -> None:
        release.wait(30)
        received.put(list(ws))

    with peer_serve(handler, "127.0.0.1", 0, max_queue=1, max_size=None, compression=None) as server:
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/", release, received
        finally:
            release.set()
            server.shutdown()
            thread.join(10)


def test_outbox_drains_in_order_after_on_open_and_later_sends_queue_behind(gated_peer: Any) -> None:
    url, release, received = gated_peer
    client = simplews.Client(url, on_open=lambda ws: ws.send("auth"), outbox=Outbox(max_bytes=None), compression=None)
    client.send(BIG)  # before any connection: kept
    client.send("q2")
    assert len(client.outbox) == 2 and client.outbox.size == len(BIG) + 2
    with client:
        # the drain took BIG and is blocked sending it (the peer reads nothing): q2 still waits
        assert wait_for(lambda: len(client.outbox) == 1 and client.ws is not None, timeout=20)
        client.send("q3")  # while the outbox drains: behind it, not straight to the connection
        assert len(client.outbox) == 2
        release.set()
        assert wait_for(lambda: len(client.outbox) == 0, timeout=30)
        client.send("q4")
        assert client.stop(timeout=20) == []
    assert received.get(timeout=20) == ["auth", BIG, "q2", "q3", "q4"]


def test_messages_sent_between_connections_go_on_the_next_one(server_factory: Any) -> None:
    got: queue.Queue[Tuple[str, Any]] = queue.Queue()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        got.put((ws.id, message))
        if message == "m1":
            ws.close(1012, "restart")

    server = server_factory(on_message=on_message)

    def on_close(ws: simplews.Connection, code: int, reason: str) -> None:
        if code == 1012:  # the connection is gone: these wait in the outbox
            client.send("m2")
            client.send(b"m3")

    client = simplews.Client(server.url, on_open=lambda ws: ws.send("auth"), on_close=on_close, outbox=Outbox(max_messages=10),
                             reconnect=True, reconnect_delay=0.01, reconnect_max_delay=0.02)  # fmt: skip
    with client:
        assert wait_for(lambda: client.ws is not None, timeout=20)
        client.send("m1")
        seen = [got.get(timeout=20) for _ in range(5)]
    first, second = seen[0][0], seen[2][0]
    assert first != second
    assert seen == [(first, "auth"), (first, "m1"), (second, "auth"), (second, "m2"), (second, b"m3")]


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"ws://127.0.0.1:{s.getsockname()[1]}/"


@pytest.mark.parametrize("overflow, kept", [("drop_oldest", ["c", "d", "e"]), ("drop_newest", ["a", "b", "c"])])
def test_overflow_policy_and_stop_hands_back_the_unsent(overflow: str, kept: List[str]) -> None:
    client = simplews.Client(dead_url(), outbox=Outbox(max_messages=3, overflow=overflow), reconnect=True,
                             reconnect_delay=0.01, reconnect_max_delay=0.02, on_error=lambda ws, exc: None)  # fmt: skip
    with client:
        for message in "abcde":
            client.send(message)
        assert client.stop(timeout=20) == kept
    assert client.outbox is not None and client.outbox.dropped == 2 and len(client.outbox) == 0


def test_overflow_raise_and_no_outbox_raise() -> None:
    client = simplews.Client(dead_url(), outbox=Outbox(max_messages=1, overflow="raise"))
    client.send("a")
    with pytest.raises(OutboxFull):
        client.send("b")
    assert client.stop() == ["a"]
    with pytest.raises(simplews.ConnectionClosedError):
        simplews.Client(dead_url()).send("no outbox, no connection")
