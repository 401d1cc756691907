"""Rooms: named groups of a server's connections, for broadcasting to one group.

A server connection joins and leaves rooms by name (``ws.join("lobby")``,
``ws.leave("lobby")``) and leaves all of them when it ends;
``server.broadcast(message, room="lobby")`` reaches the members. A room exists
while it has members. Across processes the room travels with the publication
(see :mod:`simplews.cluster`), so each server only needs its own members.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Dict, List, Set

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

__all__ = ["Rooms", "CLIENT_ROOMS", "check_room", "MAX_ROOM_NAME"]

#: the longest room name, in bytes of UTF-8 (it must fit a broadcast envelope's length field)
MAX_ROOM_NAME = 0xFFFE


def check_room(room: object) -> bytes:
    """The name of ``room`` in UTF-8; ``TypeError`` / ``ValueError`` if it cannot be a room."""
    if not isinstance(room, str):
        raise TypeError(f"a room is a str, not {type(room).__name__}")
    name = room.encode("utf-8")
    if not name or len(name) > MAX_ROOM_NAME:
        raise ValueError(f"a room name is 1 to {MAX_ROOM_NAME} bytes in UTF-8")
    return name


class Rooms:
    """Which of a server's connections are in which room (thread-safe); each connection's ``rooms`` says its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._members: Dict[str, Set[Connection]] = {}

    def join(self, conn: Connection, room: str) -> None:
        """Add ``conn`` to ``room``; nothing happens once it is closed (it left every room then)."""
        check_room(room)
        with self._lock:
            if conn.closed:
                return
            self._members.setdefault(room, set()).add(conn)
            conn.rooms = conn.rooms | {room}

    def leave(self, conn: Connection, room: str) -> None:
        """Take ``conn`` out of ``room`` (nothing happens if it is not in it)."""
        check_room(room)
        with self._lock:
            self._remove(conn, room)
            conn.rooms = conn.rooms - {room}

    def leave_all(self, conn: Connection) -> None:
        """Take ``conn`` out of every room (when it ends)."""
        with self._lock:
            for room in conn.rooms:
                self._remove(conn, room)
            conn.rooms = frozenset()

    def _remove(self, conn: Connection, room: str) -> None:
        members = self._members.get(room)
        if members is not None:
            members.discard(conn)
            if not members:
                del self._members[room]

    def members(self, room: str) -> List[Connection]:
        """A snapshot of the connections in ``room``."""
        check_room(room)
        with self._lock:
            return list(self._members.get(room, ()))

    def names(self) -> List[str]:
        """The rooms that have members, sorted."""
        with self._lock:
            return sorted(self._members)


class _ClientRooms(Rooms):
    """A client connection's rooms: there are none to join."""

    def join(self, conn: Connection, room: str) -> None:
        """Refuse: rooms are a server's."""
        raise RuntimeError("rooms are a server's: only a server's connections join them")

    leave = join


#: what a connection that no server gave its rooms joins (a client's): nothing
CLIENT_ROOMS: Rooms = _ClientRooms()
