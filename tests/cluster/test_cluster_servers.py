"""Two simplews server processes sharing one Redis, with clients connected to each (simplews and websockets)."""

from __future__ import annotations

import json
from typing import Any, List

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


def receive(ws: Any, count: int) -> List[Any]:
    return [ws.recv(timeout=30) for _ in range(count)]


def connected(node: Node) -> bool:
    return bool(node.stats()["connected"])


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
    # a client can have the last message before deliver() returned and was counted
    assert wait_for(lambda: b.stats()["delivered"] == 102, timeout=30), b.stats()
    stats_a, stats_b = a.stats(), b.stats()
    assert stats_a["published"] == 102 and stats_b["skipped"] == 1
    assert stats_a["dropped"] == stats_b["dropped"] == stats_b["gaps"] == 0
    assert a.stop() == 0 and b.stop() == 0


def test_redis_killed_and_restarted_while_servers_run(nodes: NodeFactory, redis_server: RedisServer, ws_client: ClientFactory) -> None:
    a, b = nodes("--timeout", "0.5"), nodes("--timeout", "0.5")
    on_a, on_b = joined(ws_client(a.url)), joined(ws_client(b.url))
    on_a.send("before")
    assert on_a.recv(timeout=30) == "before" and on_b.recv(timeout=30) == "before"

    redis_server.kill()
    on_a.send("during")
    assert on_a.recv(timeout=30) == "during"  # local delivery goes on without Redis
    assert wait_for(lambda: not connected(a) and not connected(b), timeout=30)
    assert wait_for(lambda: a.stats()["dropped"] == 1, timeout=30)  # published after the local broadcast

    redis_server.start()
    assert wait_for(lambda: connected(a) and connected(b), timeout=30)
    on_a.send("after")  # a subscribed again, so its publisher no longer backs off
    assert on_b.recv(timeout=30) == "after"  # "during" never arrives: it was dropped, and counted
    assert b.stats()["reconnects"] >= 1
    assert a.stop() == 0 and b.stop() == 0


def test_server_shutdown_is_bounded_while_redis_hangs(nodes: NodeFactory, redis_server: RedisServer, ws_client: ClientFactory) -> None:
    a = nodes("--timeout", "0.5")
    on_a = joined(ws_client(a.url))
    redis_server.pause()
    try:
        on_a.send("into the void")
        assert on_a.recv(timeout=30) == "into the void"
        assert a.stop() == 0  # SIGINT: the server shuts down and the broadcast stops, Redis frozen
        with pytest.raises(simplews.ConnectionClosed):
            on_a.recv(timeout=30)
        assert on_a.close_code == 1001
    finally:
        redis_server.resume()
