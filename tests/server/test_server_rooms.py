"""Rooms on one server, without Redis: ws.join / ws.leave and server.broadcast(message, room=...), with its counters."""

from __future__ import annotations

import json
import queue
from typing import Any, List, Tuple

import pytest
import websocket
from helpers import wait_for
from server_raw import never_reading_client, open_raw, read_frame

import simplews

pytestmark = pytest.mark.timeout(60)


def on_command(ws: simplews.Connection, message: Any) -> None:
    """``join R`` / ``leave R`` / ``rooms``: answered once done, so the client knows the server counts it."""
    command, _, room = str(message).partition(" ")
    if command == "join":
        ws.join(room)
    elif command == "leave":
        ws.leave(room)
    ws.send(json.dumps(sorted(ws.rooms)))


def command(ws: Any, line: str) -> List[str]:
    ws.send(line)
    return json.loads(ws.recv(timeout=10) if isinstance(ws, simplews.Connection) else ws.recv())


def test_a_room_broadcast_reaches_its_members_only(server_factory: Any) -> None:
    closed: List[List[str]] = []

    def on_close(ws: simplews.Connection, code: int, reason: str) -> None:
        ws.join("late")  # too late: an ended connection joins nothing
        closed.append(sorted(ws.rooms))

    server = server_factory(on_message=on_command, on_close=on_close)
    with simplews.connect(server.url) as a, simplews.connect(server.url) as outsider:
        b = websocket.create_connection(server.url, timeout=10)
        try:
            assert command(a, "join red") == ["red"]
            assert command(b, "join red") == ["red"]
            assert command(b, "join blue") == ["blue", "red"]
            assert command(outsider, "rooms") == []
            assert server.rooms == ["blue", "red"]

            assert server.broadcast("to red", room="red") == 2
            assert server.broadcast(b"\x00to blue", room="blue") == 1
            assert server.broadcast("to nobody", room="green") == 0
            assert a.recv(timeout=10) == "to red"
            assert [b.recv(), b.recv()] == ["to red", b"\x00to blue"]

            assert command(b, "leave red") == ["blue"]
            assert command(b, "leave red") == ["blue"]  # leaving twice does nothing
            me = next(c for c in server.connections if c.remote_address == a.local_address)
            assert server.broadcast("red again", room="red", exclude=[me]) == 0
            assert server.broadcast("red, a too", room="red") == 1
            assert server.broadcast("everyone") == 3
            assert [a.recv(timeout=10), a.recv(timeout=10)] == ["red, a too", "everyone"]
            assert b.recv() == "everyone"
            assert outsider.recv(timeout=10) == "everyone"  # none of the room broadcasts reached it
            stats = server.broadcast_stats
            assert (stats.delivered, stats.skipped, stats.published, stats.received, stats.dropped) == (7, 0, 0, 0, 0)
        finally:
            b.close()
        assert wait_for(lambda: server.rooms == ["red"], timeout=20)  # b ended: it left blue
    assert wait_for(lambda: server.rooms == [] and len(closed) == 3, timeout=20)  # a ended: red is gone
    assert "late" not in server.rooms and all("late" not in rooms for rooms in closed)


def test_rooms_refuse_bad_names_and_client_connections(server_factory: Any) -> None:
    errors: queue.Queue[Tuple[str, BaseException]] = queue.Queue()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        for room in (b"bytes", "", "x" * 0xFFFF):
            try:
                ws.join(room)  # type: ignore[arg-type]
            except (TypeError, ValueError) as exc:
                errors.put((repr(room)[:10], exc))
        ws.send("done")

    server = server_factory(on_message=on_message)
    with simplews.connect(server.url) as ws:
        ws.send("go")
        assert ws.recv(timeout=10) == "done"
        kinds = [type(errors.get(timeout=10)[1]) for _ in range(3)]
        assert kinds == [TypeError, ValueError, ValueError]
        assert server.rooms == []
        with pytest.raises(RuntimeError, match="server"):
            ws.join("lobby")
        with pytest.raises(RuntimeError, match="server"):
            ws.leave("lobby")
        assert ws.rooms == frozenset()
        with pytest.raises(TypeError):
            server.broadcast("x", room=b"lobby")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            server.broadcast("x", room="")
        assert server.broadcast("after") == 1
        assert ws.recv(timeout=10) == "after"  # nothing was sent by the refused broadcasts


def test_a_slow_member_is_skipped_and_counted(server_factory: Any) -> None:
    server = server_factory(
        on_open=lambda ws: ws.join("feed"), compression=None, ping_interval=None, frame_size=None, send_timeout=None
    )
    slow = never_reading_client(server.port)
    normal = [open_raw(server.port) for _ in range(2)]
    try:
        members = lambda: [c for c in server.connections if c.rooms == {"feed"}]  # noqa: E731
        assert wait_for(lambda: len(members()) == 3, timeout=20)  # each joined in its on_open
        sent = 0
        while server.broadcast_stats.skipped == 0:
            assert sent < 200, server.broadcast_stats
            message = bytes([sent % 256]) * 256 * 1024
            server.broadcast(message, room="feed", timeout=None)  # never closed for it: skipped once it owes too much
            sent += 1
            for sock, buf in normal:  # the others get every message, whole and in order
                assert read_frame(sock, buf) == (0x2, message)
        stats = server.broadcast_stats
        assert stats.skipped == 1 and stats.delivered == 3 * sent - 1, stats
    finally:
        slow.close()
        for sock, _ in normal:
            sock.close()
