"""What a peer's silence means: keepalive pings, and the bounds on a peer that takes nothing.

One rule decides whether a peer is still there: it is alive while bytes
arrive from it, or while our backlog drains (the kernel takes our bytes again
after it had to make us wait). A pong stuck behind our own backlog is
therefore not the peer's fault, and a peer that vanished is still found out
while one of our threads is blocked writing to it. Each timeout measures:

* ``ping_timeout``: after a keepalive ping, how long the peer may show no
  sign of life at all before the connection fails with 1011 (a sign of life
  vouches for the peer for one ``ping_interval``: see :meth:`Liveness.silence_from`);
* ``send_timeout``: while we wait for the peer to take our bytes, how long it
  may take none of them before the connection fails with 1011 (a peer that
  sends but does not read, or reads nothing at all);
* a broadcast's ``timeout``: the same, shorter bound while a broadcast waits
  for the peer; it fails with 1008 ("too slow to receive").
"""

from __future__ import annotations

import enum
from typing import List, Optional

from .options import ConnectionOptions
from .protocol import CLOSED, OPEN, State
from .stream import Stream

__all__ = ["Liveness", "Verdict"]


class Verdict(enum.Enum):
    """What to do about a connection now."""

    NOTHING = 0
    PING = 1  # a keepalive ping is due
    DEAD = 2  # the peer showed no sign of life for ping_timeout after a ping
    STALLED = 3  # the peer took nothing for send_timeout
    TOO_SLOW = 4  # the peer took nothing for a waiting broadcast's timeout


class Liveness:
    """Keepalive and drain bounds of one connection (the judgment only: no I/O, no locks)."""

    __slots__ = ("options", "stream", "ping_at", "awaiting")

    def __init__(self, options: ConnectionOptions, stream: Stream, now: float) -> None:
        self.options = options
        self.stream = stream
        #: when the last keepalive ping was queued
        self.ping_at = now
        #: the payload of the keepalive ping whose pong we wait for
        self.awaiting: Optional[bytes] = None

    def last_sign_of_life(self) -> float:
        """When the peer last sent bytes, or last took bytes we had to wait to give it."""
        stream = self.stream
        return max(stream.last_read, stream.last_drain)

    def silence_from(self, interval: float) -> float:
        """From when an unanswered ping counts the peer's silence.

        From the ping, or from ``ping_interval`` after the peer's last sign of
        life if that is later: the kernel reports a slow reader's progress only
        in bursts (here, about once a second), so a sign of life vouches for the
        peer for one interval. A peer that went silent is therefore found out
        within ``ping_interval + ping_timeout`` of its last sign of life, and
        never sooner than ``ping_timeout`` after a ping.
        """
        return max(self.ping_at, self.last_sign_of_life() + interval)

    def judge(self, now: float, state: State, window: Optional[float]) -> Verdict:
        """What the connection's ``state`` calls for at ``now`` (``window``: a broadcast waits)."""
        options, stream = self.options, self.stream
        busy = stream.busy_since
        if busy is not None:
            stalled = now - max(busy, stream.last_drain)
            if options.send_timeout is not None and stalled >= options.send_timeout:
                return Verdict.STALLED
            if window is not None and stalled >= window:
                return Verdict.TOO_SLOW
        if options.ping_interval and state is not CLOSED:
            if self.awaiting is not None and options.ping_timeout is not None:
                if now - self.silence_from(options.ping_interval) >= options.ping_timeout:
                    return Verdict.DEAD
            elif state is OPEN and now - self.ping_at >= options.ping_interval:
                return Verdict.PING
        return Verdict.NOTHING

    def due(self, state: State, window: Optional[float]) -> List[float]:
        """The times at which :meth:`judge` may change its mind."""
        options, stream = self.options, self.stream
        due: List[float] = []
        if options.ping_interval and state is not CLOSED:
            if self.awaiting is not None:
                if options.ping_timeout is not None:
                    due.append(self.silence_from(options.ping_interval) + options.ping_timeout)
            elif state is OPEN:
                due.append(self.ping_at + options.ping_interval)
        busy = stream.busy_since
        if busy is not None:
            since = max(busy, stream.last_drain)
            for bound in (options.send_timeout, window):
                if bound is not None:
                    due.append(since + bound)
        return due

    def pinged(self, payload: bytes, now: float) -> None:
        """A keepalive ping was queued."""
        self.awaiting, self.ping_at = payload, now

    def ponged(self, payload: bytes) -> None:
        """A pong arrived; forget the keepalive ping it answers."""
        if payload == self.awaiting:
            self.awaiting = None
