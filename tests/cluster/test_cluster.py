"""RedisBroadcast against a real Redis: two or three instances in this process, fake ``deliver`` callbacks."""

from __future__ import annotations

import gc
import logging
import os
import struct
import subprocess
import sys
import threading
import uuid
from typing import Any, Dict, List, Optional

import pytest
from cluster_helpers import BroadcastFactory, Inbox
from helpers import wait_for
from redis_server import RedisServer, free_port

import simplews

pytestmark = pytest.mark.timeout(60)


def envelope(sender: bytes, seq: int, payload: bytes, *, kind: bytes = b"t", room: Optional[str] = None) -> bytes:
    """An envelope written from the documented layout, not with the module's own encoder."""
    name = b"" if room is None else room.encode()
    return b"SWB1" + kind + sender + struct.pack(">QH", seq, 0xFFFF if room is None else len(name)) + name + payload


def settled(broadcast: simplews.RedisBroadcast, **expected: int) -> bool:
    """Whether the counters reach ``expected`` (bounded): ``delivered`` counts once ``deliver`` has returned."""
    return wait_for(lambda: all(getattr(broadcast.stats, name) == value for name, value in expected.items()), timeout=30)


def sync(sender: simplews.RedisBroadcast, inbox: Inbox, count: int, marker: str = "sync") -> List[Any]:
    """Publish ``marker`` and return the first ``count`` messages ``inbox`` got, the marker last (bounded)."""
    assert sender.publish(marker)
    got = [message for message, _ in inbox.wait_for(count)]
    assert got[-1] == marker, got
    return got


def test_a_publication_reaches_the_others_but_never_its_own_server(broadcasts: BroadcastFactory) -> None:
    (a, inbox_a), (b, inbox_b), (_, inbox_c) = broadcasts(), broadcasts(), broadcasts()
    assert a.publish("hello") is True
    assert inbox_b.wait_for(1) == [("hello", None)] and inbox_c.wait_for(1) == [("hello", None)]
    assert sync(b, inbox_a, 1, "from b") == ["from b"]  # "hello" never came back to a
    assert settled(a, echoes=1, published=1, received=1, delivered=1, dropped=0, gaps=0), a.stats
    assert settled(b, echoes=1), b.stats
    assert a.instance_id != b.instance_id and len(a.instance_id) == 32
    assert a.connected and "running" in repr(a) and a.channel.endswith(":broadcast")


def test_text_stays_text_and_binary_binary(broadcasts: BroadcastFactory) -> None:
    (a, _), (_, inbox) = broadcasts(), broadcasts()
    sent: List[Any] = ["é☃ text", "", b"\x00\xff binary", b"", bytearray(b"\x01\x02"), memoryview(b"view")]
    for message in sent:
        assert a.publish(message)
    got = [message for message, _ in inbox.wait_for(len(sent))]
    assert got == ["é☃ text", "", b"\x00\xff binary", b"", b"\x01\x02", b"view"]
    assert [type(message) for message in got] == [str, str, bytes, bytes, bytes, bytes]


def test_rooms_ride_with_the_message(broadcasts: BroadcastFactory) -> None:
    (a, _), (_, inbox) = broadcasts(), broadcasts()
    for room in ("lobby", None, "café ☃"):
        assert a.publish(f"to {room!r}", room=room)
    assert inbox.wait_for(3) == [("to 'lobby'", "lobby"), ("to None", None), ("to 'café ☃'", "café ☃")]
    with pytest.raises(ValueError, match="room name"):
        a.publish("to no name", room="")  # the one rule for room names (simplews.rooms.check_room)


def test_each_publisher_keeps_its_order(broadcasts: BroadcastFactory) -> None:
    (a, _), (b, _), (c, inbox) = broadcasts(), broadcasts(), broadcasts()
    threads = [
        threading.Thread(target=lambda who=who, sender=sender: [sender.publish(f"{who}:{i}") for i in range(150)])
        for who, sender in [("a1", a), ("a2", a), ("b", b)]
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    got = [message for message, _ in inbox.wait_for(450)]
    for who in ("a1", "a2", "b"):
        assert [m for m in got if m.startswith(who + ":")] == [f"{who}:{i}" for i in range(150)]
    assert c.stats.gaps == 0 and a.stats.published == 300 and b.stats.published == 150


def test_envelope_layout_as_documented(broadcasts: BroadcastFactory, redis_server: RedisServer) -> None:
    (a, _), (_, inbox) = broadcasts(), broadcasts()
    client = redis_server.client()
    raw = client.pubsub()
    try:
        raw.subscribe(a.channel)
        assert raw.get_message(timeout=10)["type"] == "subscribe"
        assert a.publish("first", room="r") and a.publish(b"\x00second")
        first, second = (raw.get_message(timeout=10)["data"] for _ in range(2))
        sender = bytes.fromhex(a.instance_id)
        assert first == envelope(sender, 1, b"first", room="r")
        assert second == envelope(sender, 2, b"\x00second", kind=b"b")
        # and an envelope written by hand by another "server" is delivered like any other
        client.publish(a.channel, envelope(uuid.uuid4().bytes, 1, b"by hand", room="r"))
        assert inbox.wait_for(3)[2] == ("by hand", "r")
    finally:
        raw.close()
        client.close()


def test_gaps_and_foreign_messages_are_counted(broadcasts: BroadcastFactory, redis_server: RedisServer, caplog: Any) -> None:
    (b, inbox) = broadcasts()
    sender = uuid.uuid4().bytes
    client = redis_server.client()
    try:
        for seq in (1, 2, 5, 6, 10):
            client.publish(b.channel, envelope(sender, seq, b"%d" % seq))
        client.publish(b.channel, b"not an envelope")
        client.publish(b.channel, envelope(sender, 11, b"\xff\xfe not UTF-8"))
        client.publish(b.channel, envelope(uuid.uuid4().bytes, 7, b"another sender's first"))
    finally:
        client.close()
    assert [m for m, _ in inbox.wait_for(6)] == ["1", "2", "5", "6", "10", "another sender's first"]
    assert settled(b, invalid=2, gaps=2 + 3, received=7, delivered=6), b.stats  # a sender first seen at 7 is no gap
    assert "missed 2 publication(s)" in caplog.text and "not a simplews envelope" in caplog.text


def test_deliver_raising_is_logged_and_counted(redis_server: RedisServer, caplog: Any) -> None:
    got: List[Any] = []

    def deliver(message: Any, room: Optional[str]) -> None:
        if message == "boom":
            raise RuntimeError("handler bug")
        got.append(message)

    a = simplews.RedisBroadcast(redis_server.url, channel_prefix="raising")
    b = simplews.RedisBroadcast(redis_server.url, channel_prefix="raising")
    a.start(lambda message, room: None)
    b.start(deliver)
    try:
        assert a.publish("boom") and a.publish("after")
        assert wait_for(lambda: got == ["after"], timeout=30)
        assert settled(b, errors=1, delivered=1), b.stats
        assert "deliver() raised" in caplog.text and "handler bug" in caplog.text
    finally:
        a.stop()
        b.stop()


def test_deliver_that_publishes_would_echo_forever_and_is_refused(redis_server: RedisServer, caplog: Any) -> None:
    """deliver() must send to local clients only; publishing from it is dropped, so two servers cannot ping-pong."""
    answers: List[bool] = []
    a = simplews.RedisBroadcast(redis_server.url, channel_prefix="echo")
    b = simplews.RedisBroadcast(redis_server.url, channel_prefix="echo")
    inbox = Inbox()
    a.start(inbox)
    b.start(lambda message, room: answers.append(b.publish(message)))
    try:
        assert a.publish("once")
        assert wait_for(lambda: answers == [False], timeout=30)
        assert b.stats.published == 0 and b.stats.dropped == 1 and "called from deliver()" in caplog.text
        assert sync(b, inbox, 1, "from b's own thread") == ["from b's own thread"]  # nothing echoed before it
    finally:
        a.stop()
        b.stop()


def test_stop_from_deliver(redis_server: RedisServer) -> None:
    a = simplews.RedisBroadcast(redis_server.url, channel_prefix="stopping")
    b = simplews.RedisBroadcast(redis_server.url, channel_prefix="stopping")
    stopped = threading.Event()

    def deliver(message: Any, room: Optional[str]) -> None:
        b.stop()
        stopped.set()

    a.start(lambda message, room: None)
    b.start(deliver)
    try:
        assert a.publish("stop now") and stopped.wait(30)
        assert wait_for(lambda: "stopped" in repr(b) and not b.connected, timeout=30)
    finally:
        a.stop()
        b.stop()


def test_slow_deliver_never_holds_up_the_subscriber(redis_server: RedisServer, caplog: Any) -> None:
    release = threading.Event()
    got: List[Any] = []

    def slow(message: Any, room: Optional[str]) -> None:
        release.wait(30)
        got.append(message)

    a = simplews.RedisBroadcast(redis_server.url, channel_prefix="slow")
    b = simplews.RedisBroadcast(redis_server.url, channel_prefix="slow", max_pending=4)
    a.start(lambda message, room: None)
    b.start(slow)
    try:
        for i in range(50):
            assert a.publish(str(i))
        # all 50 are read while deliver() is stuck on the first: 1 in it, 4 queued, the rest dropped
        assert wait_for(lambda: b.stats.received == 50, timeout=30), b.stats
        assert 45 <= b.stats.overflowed <= 46 and b.stats.dropped == b.stats.overflowed
        release.set()
        assert wait_for(lambda: b.stats.delivered + b.stats.dropped == 50, timeout=30), b.stats
        assert got == sorted(got, key=int) and got[0] == "0"  # what went through kept its order
        assert len([r for r in caplog.records if "deliver() is too slow" in r.getMessage()]) == 1  # rate-limited
    finally:
        release.set()
        a.stop()
        b.stop()


def test_counters_and_warnings_are_rate_limited(broadcasts: BroadcastFactory, caplog: Any) -> None:
    (a, _) = broadcasts()
    a.stop()
    with caplog.at_level(logging.WARNING, logger="simplews"):
        results = [a.publish("late") for _ in range(5)]
    assert results == [False] * 5 and a.stats.dropped == 5
    warnings = [r for r in caplog.records if "after stop()" in r.getMessage()]
    assert len(warnings) == 1  # one warning, not five
    a.stop()  # twice is fine


def test_publish_rejects_what_is_not_a_message(broadcasts: BroadcastFactory) -> None:
    (a, _) = broadcasts()
    with pytest.raises(TypeError, match="str or bytes-like"):
        a.publish(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="room is a str"):
        a.publish("x", room=5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="room name"):
        a.publish("x", room="r" * 70_000)
    assert a.stats.dropped == 0 and a.stats.published == 0


def test_start_once_and_publish_before_start(redis_server: RedisServer) -> None:
    a = simplews.RedisBroadcast(redis_server.url)
    assert "not started" in repr(a)
    assert a.publish("early") is False and a.stats.dropped == 1
    a.stop()  # before start: nothing to do
    a.start(lambda message, room: None)
    try:
        with pytest.raises(RuntimeError, match="starts once"):
            a.start(lambda message, room: None)
        with pytest.raises(TypeError, match="callable"):
            simplews.RedisBroadcast(redis_server.url).start("not callable")  # type: ignore[arg-type]
    finally:
        a.stop()
    assert "stopped" in repr(a)


def test_unreachable_at_start_names_the_url_without_the_password() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    broadcast = simplews.RedisBroadcast(url, timeout=5)
    with pytest.raises(simplews.RedisUnavailable) as caught:
        broadcast.start(lambda message, room: None)
    text = str(caught.value)
    assert f"redis://***@127.0.0.1:{url.rsplit(':', 1)[1]}" in text and "s3cret" not in text, text
    assert isinstance(caught.value, simplews.ConnectError) and isinstance(caught.value, simplews.WebSocketError)
    assert "s3cret" not in repr(broadcast)


def test_wrong_password_is_a_clear_error(redis_server: RedisServer) -> None:
    client = redis_server.client()
    try:
        client.config_set("requirepass", "right-one")
    finally:
        client.close()
    with pytest.raises(simplews.RedisUnavailable, match="Redis refused us at redis://\\*\\*\\*@127.0.0.1") as caught:
        simplews.RedisBroadcast(f"redis://:wrong-one@127.0.0.1:{redis_server.port}/0").start(lambda message, room: None)
    assert "wrong-one" not in str(caught.value)
    ok = simplews.RedisBroadcast(f"redis://:right-one@127.0.0.1:{redis_server.port}/0")
    ok.start(lambda message, room: None)
    try:
        assert ok.publish("authenticated")
    finally:
        ok.stop()


def test_not_a_redis_url_nor_sensible_settings() -> None:
    with pytest.raises(simplews.InvalidURI, match="not a Redis URL: http://"):
        simplews.RedisBroadcast("http://127.0.0.1/")
    bad_settings: List[Dict[str, float]] = [
        {"timeout": 0}, {"max_pending": 0}, {"health_check_interval": 0}, {"reconnect_delay": 2.0, "reconnect_max_delay": 1.0},
    ]  # fmt: skip
    for bad in bad_settings:
        with pytest.raises(ValueError, match="are required"):
            simplews.RedisBroadcast(**bad)  # type: ignore[arg-type]


def test_without_the_extra_the_error_names_it() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "import simplews\n"
        "try:\n"
        "    simplews.RedisBroadcast()\n"
        "except simplews.MissingDependency as exc:\n"
        "    print(isinstance(exc, ImportError), isinstance(exc, simplews.WebSocketError), exc.name, exc)\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True, env=env)
    assert out.stdout.strip() == "True True redis RedisBroadcast needs the redis package: pip install 'simplews[redis]'"


def test_stop_closes_every_socket(redis_server: RedisServer) -> None:
    def open_fds() -> int:
        gc.collect()  # sockets other tests dropped without closing
        return len(os.listdir("/proc/self/fd"))

    client = redis_server.client()
    try:

        def ours() -> List[str]:
            return [c["name"] for c in client.client_list() if c["name"].startswith(f"simplews-{a.instance_id[:8]}")]

        client.ping()  # its own connection is open before counting
        before = open_fds()
        a = simplews.RedisBroadcast(redis_server.url, channel_prefix="fds")
        a.start(lambda message, room: None)
        assert a.publish("x")
        assert len(ours()) == 2  # the publishing and the subscribing connection, named after the instance
        a.stop()
        assert wait_for(lambda: ours() == [], timeout=10), ours()
        assert wait_for(lambda: open_fds() == before, timeout=10), (before, open_fds())
    finally:
        client.close()
