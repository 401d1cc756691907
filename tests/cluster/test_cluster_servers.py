"""Server processes sharing one Redis through ``Server(broadcast=RedisBroadcast(...))``, clients connected to each.

Every node is tests/cluster/node.py: what a client sends is ``server.broadcast``
(to everyone, or to a room with ``@ROOM ...``), which reaches every process.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

import pytest
from cluster_helpers import Node, NodeFactory
from helpers import wait_for
from redis_server import RedisServer
from websockets.sync.client import connect as websockets_connect

import simplews
from simplews.testing import ClientFactory

pytestmark = pytest.mark.timeout(120)


def joined(ws: Any) -> Any:
    """``ws`` once its server counts it among the broadcast's recipients (it answered ``whoami``)."""
    ws.send("whoami")
    json.loads(ws.recv(timeout=30))
    return ws


def join(ws: Any, room: str) -> List[str]:
    """Join ``room``; the rooms the server says ``ws`` is in once it did."""
    ws.send(f"join {room}")
    return json.loads(ws.recv(timeout=30))


def receive(ws: Any, count: int) -> List[Any]:
    return [ws.recv(timeout=30) for _ in range(count)]


def connected(node: Node) -> bool:
    return bool(node.stats()["connected"])


def counters(node: Node, side: str) -> Dict[str, int]:
    return node.stats()[side]


def settled(node: Node, **expected: int) -> bool:
    """Whether the node's ``server`` counters reach ``expected`` (bounded wait: a client may see a message before it is counted)."""
    return wait_for(lambda: {k: v for k, v in counters(node, "server").items() if k in expected} == expected, timeout=30)


def test_a_broadcast_reaches_the_clients_of_every_server(nodes: NodeFactory, ws_client: ClientFactory) -> None:
    a, b = nodes(), nodes()
    assert a.pid != b.pid
    on_a = joined(ws_client(a.url))
    on_b = joined(ws_client(b.url))
    with websockets_connect(b.url, open_timeout=30) as independent:
        joined(independent)
        on_a.send("hello from a")
        on_a.send(b"\x00binary from a")
        on_b.send("hello from b")
        for ws in (on_a, on_b, independent):
            got = receive(ws, 3)
            # once each (a server never delivers its own publication twice), in each sender's order
            assert sorted(got, key=repr) == sorted(["hello from a", b"\x00binary from a", "hello from b"], key=repr), got
            assert got.index("hello from a") < got.index(b"\x00binary from a")

        for i in range(100):
            on_a.send(str(i))
        assert receive(independent, 100) == [str(i) for i in range(100)]
        assert receive(on_b, 100) == [str(i) for i in range(100)]
        assert receive(on_a, 100) == [str(i) for i in range(100)]
    # a client can have the last message before the delivery was counted
    # b's two clients got a's 102 and b's own message; a's one client got all 103
    assert settled(b, received=102, delivered=2 * 103, published=1, dropped=0, skipped=0), b.stats()
    assert settled(a, received=1, delivered=103, published=102, dropped=0, skipped=0), a.stats()
    assert counters(b, "bus")["echoes"] == 1 and counters(b, "bus")["gaps"] == 0
    assert a.stop() == 0 and b.stop() == 0


def test_rooms_span_the_servers(nodes: NodeFactory, ws_client: ClientFactory) -> None:
    a, b = nodes(), nodes()
    red_on_a, outsider_on_a = joined(ws_client(a.url)), joined(ws_client(a.url))
    red_on_b, blue_on_b = joined(ws_client(b.url)), joined(ws_client(b.url))
    assert join(red_on_a, "red") == ["red"]
    assert join(red_on_b, "red") == ["red"]
    assert join(blue_on_b, "blue") == ["blue"]
    with websockets_connect(b.url, open_timeout=30) as independent:
        assert join(independent, "red") == ["red"]

        outsider_on_a.send("@red for red")  # from a client in no room, on a: reaches red on both servers
        blue_on_b.send("@blue for blue")  # b's own room member, b only has members
        for ws in (red_on_a, red_on_b, independent):
            assert ws.recv(timeout=30) == "for red"
        assert blue_on_b.recv(timeout=30) == "for blue"

        red_on_b.send("leave red")
        assert json.loads(red_on_b.recv(timeout=30)) == []
        blue_on_b.send("@red red again")
        assert red_on_a.recv(timeout=30) == "red again" and independent.recv(timeout=30) == "red again"

        outsider_on_a.send("everyone")  # the rooms' messages were not delivered to anyone else
        for ws in (red_on_a, outsider_on_a, red_on_b, blue_on_b, independent):
            assert ws.recv(timeout=30) == "everyone"
    # a: red (own), blue (received, no member), red again (received), everyone (own): 1 + 0 + 1 + 2 deliveries
    assert settled(a, received=2, delivered=1 + 0 + 1 + 2, published=2), a.stats()
    assert a.stop() == 0 and b.stop() == 0


def test_redis_killed_and_restarted_while_servers_run(nodes: NodeFactory, redis_server: RedisServer, ws_client: ClientFactory) -> None:
    a, b = nodes("--timeout", "0.5"), nodes("--timeout", "0.5")
    on_a, on_b = joined(ws_client(a.url)), joined(ws_client(b.url))
    assert join(on_b, "room") == ["room"]
    on_a.send("before")
    assert on_a.recv(timeout=30) == "before" and on_b.recv(timeout=30) == "before"

    redis_server.kill()
    on_a.send("during")
    assert on_a.recv(timeout=30) == "during"  # local delivery goes on without Redis
    assert wait_for(lambda: not connected(a) and not connected(b), timeout=30)
    assert wait_for(lambda: counters(a, "server")["dropped"] == 1, timeout=30)  # published after the local broadcast
    on_b.send("@room local only")
    assert on_b.recv(timeout=30) == "local only"  # rooms too
    assert wait_for(lambda: counters(b, "server")["dropped"] == 1, timeout=30)

    redis_server.start()
    assert wait_for(lambda: connected(a) and connected(b), timeout=30)
    on_a.send("@room after")  # a subscribed again, so its publisher no longer backs off
    assert on_b.recv(timeout=30) == "after"  # "during" never arrives: it was dropped, and counted
    assert counters(b, "bus")["reconnects"] >= 1
    assert a.stop() == 0 and b.stop() == 0
    assert "publication dropped" in a.process.stderr()  # the drop was logged as a warning


def test_a_frozen_redis_bounds_broadcast_and_shutdown(nodes: NodeFactory, redis_server: RedisServer, ws_client: ClientFactory) -> None:
    a, b = nodes("--timeout", "0.5"), nodes("--timeout", "0.5")
    on_a, on_b = joined(ws_client(a.url)), joined(ws_client(b.url))
    redis_server.pause()
    try:
        on_a.send("frozen")
        assert on_a.recv(timeout=30) == "frozen"  # local delivery goes on: publishing gave up after its timeout
        assert wait_for(lambda: counters(a, "server")["dropped"] >= 1, timeout=30)
        assert wait_for(lambda: not connected(b), timeout=30)  # b's PING went unanswered
        on_b.send("local on b")
        assert on_b.recv(timeout=30) == "local on b"
    finally:
        redis_server.resume()
    assert wait_for(lambda: connected(a) and connected(b), timeout=30)
    on_a.send("thawed")
    got = [on_b.recv(timeout=30)]
    if got[0] == "frozen":  # Redis may still pass on what it took before it froze; once at most
        got.append(on_b.recv(timeout=30))
    assert got[-1] == "thawed", got
    redis_server.pause()
    try:
        assert a.stop() == 0  # SIGINT: the server shuts down and the broadcast stops, Redis frozen
        rest: List[Any] = []
        with pytest.raises(simplews.ConnectionClosed):
            for _ in range(3):
                rest.append(on_a.recv(timeout=30))
        assert on_a.close_code == 1001
        # its own "thawed", and b's "local on b" if Redis passed it on after thawing
        assert rest in (["thawed"], ["local on b", "thawed"], ["thawed", "local on b"]), rest
    finally:
        redis_server.resume()
    assert "publication dropped" in a.process.stderr()
    assert b.stop() == 0
