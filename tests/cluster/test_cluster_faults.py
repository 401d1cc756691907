"""RedisBroadcast when Redis dies, restarts, hangs (SIGSTOP) or drops a subscriber that fell behind."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import pytest
from cluster_helpers import BroadcastFactory
from helpers import wait_for
from redis_server import RedisServer
from test_cluster import envelope

pytestmark = pytest.mark.timeout(90)

# A hang must end in a bounded time; how long exactly depends on the machine's load, so
# this is only an upper bound far above the timeouts used (0.5 s), not a speed check.
BOUND = 20.0


def timed(call: Any, *args: Any) -> Any:
    """``call(*args)`` and the seconds it took."""
    start = time.monotonic()
    result = call(*args)
    return result, time.monotonic() - start


def test_redis_killed_then_restarted(broadcasts: BroadcastFactory, redis_server: RedisServer, caplog: Any) -> None:
    (a, _), (b, inbox) = broadcasts(timeout=0.5), broadcasts(timeout=0.5)
    assert a.publish("before") and inbox.wait_for(1) == [("before", None)]

    redis_server.kill()
    outage = [a.publish(f"during {i}") for i in range(3)]
    assert outage == [False, False, False] and a.stats.dropped == 3  # never raises, never hangs
    assert wait_for(lambda: b.stats.disconnects >= 1 and not b.connected, timeout=30), b.stats
    assert "lost the subscription to Redis" in caplog.text and "publication dropped" in caplog.text

    redis_server.start()  # the same port again
    assert wait_for(lambda: a.connected and b.connected, timeout=30), (a.stats, b.stats)
    assert a.stats.reconnects >= 1 and b.stats.reconnects >= 1
    assert "subscribed to Redis at" in caplog.text and "again after" in caplog.text
    assert a.publish("after")  # a subscribed again, so its publisher no longer backs off
    assert inbox.wait_for(2)[1] == ("after", None)
    assert b.stats.gaps >= 3  # what a dropped shows on the other side as its sequence's holes
    assert b.stats.received == 2 and inbox.messages()[:2] == ["before", "after"]


def test_publishing_connection_closed_by_redis_is_replaced(broadcasts: BroadcastFactory, redis_server: RedisServer) -> None:
    """Redis closes idle normal clients (its ``timeout`` setting, CLIENT KILL); pub/sub ones stay."""
    (a, _), (b, inbox) = broadcasts(), broadcasts()
    assert a.publish("first") and inbox.wait_for(1)
    client = redis_server.client()
    try:
        assert client.client_kill_filter(_type="normal", skipme=True) >= 1  # a's publishing connection
    finally:
        client.close()
    assert a.publish("after the kill") and a.publish("and again")
    assert [m for m, _ in inbox.wait_for(3)] == ["first", "after the kill", "and again"]
    assert a.stats.dropped == 0 and b.stats.gaps == 0 and b.stats.disconnects == 0


def test_unreachable_redis_is_retried_with_backoff(broadcasts: BroadcastFactory, redis_server: RedisServer) -> None:
    (a, _) = broadcasts(timeout=0.5, reconnect_delay=0.05, reconnect_max_delay=0.2)
    redis_server.stop()
    assert wait_for(lambda: not a.connected, timeout=30)
    time.sleep(1.0)  # several attempts fail meanwhile; none of them raises anywhere
    assert a.stats.reconnects == 0
    redis_server.start()
    assert wait_for(lambda: a.connected, timeout=30) and a.stats.reconnects == 1


def test_hung_redis_keeps_publish_and_stop_bounded(broadcasts: BroadcastFactory, redis_server: RedisServer, caplog: Any) -> None:
    (a, _), (b, inbox) = (
        broadcasts(timeout=0.5, health_check_interval=0.3),
        broadcasts(timeout=0.5, health_check_interval=0.3),
    )
    assert a.publish("before") and inbox.wait_for(1)
    redis_server.pause()
    try:
        ok, seconds = timed(a.publish, "while hung")
        assert ok is False and seconds < BOUND
        # publishers on other threads meanwhile wait at most about one timeout each, then drop
        results: list = []
        threads = [threading.Thread(target=lambda: results.append(a.publish("crowd"))) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(BOUND)
        assert results == [False] * 4
        # the subscriber notices the silence (PING unanswered) and says so
        assert wait_for(lambda: b.stats.disconnects >= 1, timeout=30), b.stats
        assert "no answer to PING" in caplog.text
        _, seconds = timed(a.stop)
        assert seconds < BOUND and not a.connected
    finally:
        redis_server.resume()
    assert wait_for(lambda: b.connected, timeout=30) and b.stats.reconnects >= 1


def test_stop_while_redis_hangs_before_anything_was_noticed(broadcasts: BroadcastFactory, redis_server: RedisServer) -> None:
    (a, _) = broadcasts(timeout=0.5)
    redis_server.pause()
    try:
        _, seconds = timed(a.stop, 5.0)
        assert seconds < BOUND
    finally:
        redis_server.resume()


def test_subscriber_dropped_for_falling_behind_is_noticed(
    broadcasts: BroadcastFactory, redis_server: RedisServer, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis closes a subscriber whose output buffer passes client-output-buffer-limit pubsub.

    The subscriber never falls behind because of ``deliver``; here it is frozen on
    purpose (its reading is held up on the first publication) to make Redis do it.
    """
    client = redis_server.client()
    client.config_set("client-output-buffer-limit", "pubsub 64kb 0 0")
    (b, inbox) = broadcasts(timeout=2.0, health_check_interval=30.0)
    frozen, thaw = threading.Event(), threading.Event()
    original = b._on_publication

    def stuck(data: Any) -> None:
        if not frozen.is_set():
            frozen.set()
            thaw.wait(30)
        original(data)

    monkeypatch.setattr(b, "_on_publication", stuck)
    sender, big = uuid.uuid4().bytes, b"x" * (256 * 1024)
    try:
        client.publish(b.channel, envelope(sender, 1, b"first", kind=b"b"))
        assert frozen.wait(30)
        for seq in range(2, 102):  # 25 MiB: more than the kernel's socket buffers hold
            client.publish(b.channel, envelope(sender, seq, big, kind=b"b"))
        assert wait_for(lambda: "output buffer limits" in redis_server.log(), timeout=30), redis_server.log()[-2000:]
    finally:
        thaw.set()
    assert wait_for(lambda: b.stats.disconnects == 1 and b.connected, timeout=30), b.stats
    client.publish(b.channel, envelope(sender, 102, b"last", kind=b"b"))
    assert wait_for(lambda: inbox.messages()[-1:] == [b"last"], timeout=30)
    stats = b.stats
    assert stats.reconnects == 1 and stats.gaps > 0 and stats.gaps + stats.received == 102, stats
    assert "lost the subscription" in caplog.text and "client-output-buffer-limit" in caplog.text
    client.close()
