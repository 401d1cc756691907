"""A Server with a RedisBroadcast in this process, beside a node.py process: attach(), start errors, shutdown."""

from __future__ import annotations

import json
import threading
from typing import List

import pytest
from cluster_helpers import Node, NodeFactory
from helpers import wait_for
from redis_server import RedisServer, free_port

import simplews

pytestmark = pytest.mark.timeout(120)


def redis_threads() -> List[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("simplews-redis-")]


def test_attach_to_a_running_server_then_shutdown_stops_it(nodes: NodeFactory, redis_server: RedisServer) -> None:
    node = nodes()
    before = redis_threads()
    server = simplews.Server(on_open=lambda ws: ws.join("lobby"), port=0).start()
    try:
        with simplews.connect(server.url) as here, simplews.connect(node.url) as there:
            assert wait_for(lambda: server.rooms == ["lobby"], timeout=30)  # joined in its on_open
            bus = simplews.RedisBroadcast(redis_server.url, channel_prefix=node_prefix(node))
            server.attach(bus)  # the server runs: started now
            assert bus.connected and len(redis_threads()) == len(before) + 2
            with pytest.raises(RuntimeError, match="one bus"):
                server.attach(simplews.RedisBroadcast(redis_server.url))

            there.send("join lobby")
            assert json.loads(there.recv(timeout=30)) == ["lobby"]
            assert server.broadcast("to the lobby", room="lobby") == 1  # here; and there, through Redis
            assert here.recv(timeout=30) == "to the lobby" and there.recv(timeout=30) == "to the lobby"
            # text= decides the frame type here and there alike
            assert server.broadcast("é".encode(), text=True) == 1 and server.broadcast("bin", text=False) == 1
            assert [here.recv(timeout=30), here.recv(timeout=30)] == ["é", b"bin"]
            assert [there.recv(timeout=30), there.recv(timeout=30)] == ["é", b"bin"]
            there.send("from the node")
            assert here.recv(timeout=30) == "from the node"
            assert wait_for(lambda: server.broadcast_stats.received == 1, timeout=30)
            stats = server.broadcast_stats
            assert (stats.published, stats.received, stats.delivered, stats.dropped, stats.skipped) == (3, 1, 4, 0, 0)
        server.shutdown()
        assert "stopped" in repr(bus) and not bus.connected
        assert wait_for(lambda: redis_threads() == before, timeout=30), redis_threads()
        assert not bus.publish("after shutdown")  # dropped and counted, never raised
        assert server.broadcast_stats.dropped == 1
    finally:
        server.shutdown()


def node_prefix(node: Node) -> str:
    """The channel prefix the node was started with (from its command line)."""
    args = list(node.process.proc.args)
    return args[args.index("--prefix") + 1]


def test_a_server_that_cannot_reach_redis_does_not_start() -> None:
    before = redis_threads()
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    server = simplews.Server(port=0, broadcast=simplews.RedisBroadcast(url, timeout=5))
    try:
        with pytest.raises(simplews.RedisUnavailable) as caught:
            server.start()
        assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in str(caught.value) and "s3cret" not in str(caught.value)
    finally:
        server.shutdown()  # bounded, and nothing of the broadcast is left running
    assert redis_threads() == before
