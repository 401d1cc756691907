"""Broadcast: one message to many connections, without waiting on any of them.

:func:`broadcast` encodes a message once (per compression setting) and hands
it to each connection's own write path, which writes it at once when its
writer role is free, or right after the message a busy writer is sending.
Nothing waits here: what a slow peer cannot take yet stays owed and the
scheduler writes it as the peer reads. A peer that takes nothing for
``timeout`` seconds while a broadcast waits for it is closed with 1008; one
that already owes too much is skipped. So no client can hold up the others,
and the caller (a feed loop, a Redis subscriber) never blocks.

:class:`Fanout` is a server's broadcasting: to all its connections or one
room's (:mod:`simplews.rooms`), and, with a :class:`BroadcastBus` attached (a
:class:`~simplews.RedisBroadcast`), to the other servers' clients, with the
counters of :class:`FanoutStats`.
"""

from __future__ import annotations

import dataclasses
import threading
import typing
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from .connection import Connection
from .protocol import Protocol
from .rooms import Rooms, check_room

__all__ = ["broadcast", "Fanout", "FanoutStats", "BroadcastBus", "DEFAULT_BROADCAST_TIMEOUT"]

#: How long a broadcast waits for a peer that takes nothing before closing it with 1008.
DEFAULT_BROADCAST_TIMEOUT = 2.0


def broadcast(
    conns: Iterable[Connection], message: Any, *, text: Optional[bool] = None, timeout: Optional[float] = DEFAULT_BROADCAST_TIMEOUT
) -> int:
    """Hand ``message`` to every connection in ``conns``; return how many took it.

    Raises ``TypeError`` (or :class:`~simplews.LocalProtocolError`) before
    anything is sent when the message cannot be sent at all.
    """
    _check(message, text)
    shared: Dict[Optional[int], List[Any]] = {}
    window = timeout if timeout is not None else 3600.0
    taken = 0
    for conn in conns:
        protocol = conn.protocol
        frames: Optional[List[Any]] = None
        if protocol.extension is None and not protocol.is_client:
            size = protocol.frame_size
            frames = shared.get(size)
            if frames is None:
                frames = shared[size] = Protocol(False, frame_size=size).send_message(message, text=text)
        if conn._offer(message, text, frames, window):
            taken += 1
    return taken


def _check(message: Any, text: Optional[bool]) -> None:
    """Refuse a message no connection could send, before anything is sent."""
    if not isinstance(message, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"a message is str or bytes-like, not {type(message).__name__}")
    if text and not isinstance(message, str):
        from .exceptions import LocalProtocolError, RemoteProtocolError
        from .frames import decode_utf8

        try:
            decode_utf8(message)
        except RemoteProtocolError:
            raise LocalProtocolError("text=True needs valid UTF-8") from None


class BroadcastBus(typing.Protocol):
    """What carries broadcasts between servers: :class:`~simplews.RedisBroadcast` is one.

    ``start(deliver)`` connects (raising when it cannot) and then calls
    ``deliver(message, room)`` for every other server's publication, never for
    its own; ``publish(message, room)`` returns whether the others will get
    it, without raising for faults; ``stop(timeout)`` ends it within about
    ``timeout`` seconds; ``stats.published`` and ``stats.dropped`` count.
    """

    def start(self, deliver: Callable[[Union[str, bytes], Optional[str]], Any]) -> None:
        """Connect, then hand every other server's publication to ``deliver(message, room)``."""

    def publish(self, message: Union[str, bytes], room: Optional[str] = None) -> bool:
        """Send ``message`` to the other servers' ``room`` (``None``: everyone); whether it went."""

    def stop(self, timeout: float = 5.0) -> None:
        """End within about ``timeout`` seconds."""

    @property
    def stats(self) -> Any:
        """Counters, at least ``published`` and ``dropped``."""


@dataclasses.dataclass(frozen=True)
class FanoutStats:
    """What a server's broadcasts did since it started (a snapshot, :attr:`simplews.Server.broadcast_stats`).

    ``published``: broadcasts the other servers got through the attached bus
    (Redis took them). ``dropped``: broadcasts lost between servers, this
    server's not published (Redis unreachable, hung or too slow) and the
    others' this one could not take in time. ``received``: the other servers'
    broadcasts delivered here. ``delivered``: messages handed to a client, one
    per client per broadcast, local or received. ``skipped``: times a client
    was passed over, because it already owed too much (too slow) or was closing.
    Without a bus ``published``, ``dropped`` and ``received`` stay 0.
    """

    published: int = 0
    dropped: int = 0
    received: int = 0
    delivered: int = 0
    skipped: int = 0


class Fanout:
    """A server's broadcasting: to its connections, to a room of them, and through a :class:`BroadcastBus` to other servers."""

    def __init__(self, connections: Callable[[], List[Connection]]) -> None:
        self._connections = connections
        self.rooms = Rooms()
        self.bus: Optional[BroadcastBus] = None
        self._lock = threading.Lock()
        self._running = False
        self._received = self._delivered = self._skipped = 0

    def attach(self, bus: BroadcastBus, *, start: bool) -> None:
        """Broadcast through ``bus`` too, starting it now if ``start`` (else at :meth:`start`)."""
        with self._lock:
            if self.bus is not None:
                raise RuntimeError("a server broadcasts through one bus; it has one already")
            self.bus = bus
        if start:
            self.start()

    def start(self) -> None:
        """Start the bus, if any, once: raises what its ``start`` raises (e.g. RedisUnavailable)."""
        with self._lock:
            bus = self.bus
            if bus is None or self._running:
                return
            self._running = True
        try:
            bus.start(self._deliver)
        except BaseException:
            self._running = False
            raise

    def stop(self, timeout: float) -> None:
        """Stop the bus, if it runs, within about ``timeout`` seconds."""
        with self._lock:
            bus, running, self._running = self.bus, self._running, False
        if bus is not None and running:
            bus.stop(timeout)

    def broadcast(
        self,
        message: Any,
        *,
        room: Optional[str] = None,
        connections: Optional[Iterable[Connection]] = None,
        exclude: Optional[Iterable[Connection]] = None,
        text: Optional[bool] = None,
        timeout: Optional[float] = DEFAULT_BROADCAST_TIMEOUT,
    ) -> int:
        """Hand ``message`` to the chosen local connections, publish it unless ``connections`` is given; how many took it here."""
        _check(message, text)
        if room is not None:
            check_room(room)
        if connections is not None:
            targets = list(connections)
        else:
            targets = self._connections() if room is None else self.rooms.members(room)
        skip = set(exclude or ())
        taken = self._hand_out([c for c in targets if c not in skip], message, text, timeout)
        bus = self.bus
        if bus is not None and connections is None and self._running:
            bus.publish(_as_sent(message, text), room)
        return taken

    def _deliver(self, message: Union[str, bytes], room: Optional[str]) -> None:
        """Another server's broadcast: to this server's connections (or the room's), never published again."""
        targets = self._connections() if room is None else self.rooms.members(room)
        self._hand_out(targets, message, None, DEFAULT_BROADCAST_TIMEOUT, received=1)

    def _hand_out(
        self, targets: List[Connection], message: Any, text: Optional[bool], timeout: Optional[float], received: int = 0
    ) -> int:
        """Broadcast to ``targets`` and count who took it and who was skipped."""
        taken = broadcast(targets, message, text=text, timeout=timeout)
        with self._lock:
            self._received += received
            self._delivered += taken
            self._skipped += len(targets) - taken
        return taken

    @property
    def stats(self) -> FanoutStats:
        """The counters now."""
        bus_stats = self.bus.stats if self.bus is not None else None
        with self._lock:
            return FanoutStats(
                published=getattr(bus_stats, "published", 0),
                dropped=getattr(bus_stats, "dropped", 0),
                received=self._received,
                delivered=self._delivered,
                skipped=self._skipped,
            )


def _as_sent(message: Any, text: Optional[bool]) -> Union[str, bytes]:
    """``message`` as the type the clients receive it: ``str`` for text, ``bytes`` for binary."""
    if text is None:
        return message if isinstance(message, str) else bytes(message)
    if text:
        return message if isinstance(message, str) else bytes(message).decode("utf-8")
    return message.encode("utf-8") if isinstance(message, str) else bytes(message)
