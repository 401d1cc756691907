"""Pings in flight: who waits for which pong, and the round-trip time it showed.

A pong answers the ping with its payload and every ping sent before it (RFC
6455 lets a peer answer only the latest of several). Each ping keeps the time
it was queued; its pong gives the round-trip time, which a
:class:`PingWaiter` returns and which becomes the connection's ``latency``.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from .exceptions import ConnectionClosed

__all__ = ["PingWaiter", "Pings"]

#: the smallest round-trip time reported: a pong is never "instant", even on a coarse clock
_MIN_RTT = 1e-9
#: the clock round-trip times are measured with (the finest the platform has)
_clock = time.perf_counter


class PingWaiter:
    """What :meth:`simplews.Connection.ping` returns: wait for the pong, learn the round-trip time."""

    __slots__ = ("_event", "_rtt", "_closed")

    def __init__(self, closed: Callable[[], ConnectionClosed]) -> None:
        self._event = threading.Event()
        self._rtt: Optional[float] = None
        self._closed = closed

    def wait(self, timeout: Optional[float] = None) -> Optional[float]:
        """Block until the pong; return the round-trip time in seconds (always > 0).

        Returns ``None`` if no pong came within ``timeout`` seconds (forever if
        ``None``); raises :class:`~simplews.ConnectionClosed` if the connection
        ended before the pong.
        """
        self._event.wait(timeout)
        if self._rtt is not None:
            return self._rtt
        if self._event.is_set():
            raise self._closed()
        return None

    def is_set(self) -> bool:
        """Whether the pong came or the connection ended (``wait()`` then returns at once)."""
        return self._event.is_set()

    @property
    def rtt(self) -> Optional[float]:
        """The round-trip time once the pong came, else ``None``."""
        return self._rtt

    def _resolve(self, rtt: Optional[float]) -> None:
        self._rtt = rtt
        self._event.set()


class Pings:
    """The pings of one connection waiting for their pong (guarded by the connection's state lock)."""

    __slots__ = ("_waiting", "latency")

    def __init__(self) -> None:
        self._waiting: Dict[bytes, Tuple[float, Optional[PingWaiter]]] = {}
        #: the round-trip time of the last ping answered, keepalive or :meth:`~simplews.Connection.ping`
        self.latency: Optional[float] = None

    def sent(self, payload: bytes, waiter: Optional[PingWaiter] = None) -> None:
        """A ping with ``payload`` was queued now (``waiter``: someone waits for its pong)."""
        self._waiting[payload] = (_clock(), waiter)

    def ponged(self, payload: bytes) -> List[Tuple[PingWaiter, float]]:
        """A pong came: forget the ping it answers and every earlier one; the waiters to wake."""
        entry = self._waiting.get(payload)
        if entry is None:
            return []
        now = _clock()
        rtt = max(now - entry[0], _MIN_RTT)
        self.latency = rtt
        woken: List[Tuple[PingWaiter, float]] = []
        for key, (when, waiter) in list(self._waiting.items()):
            if when <= entry[0]:
                del self._waiting[key]
                if waiter is not None:
                    woken.append((waiter, max(now - when, _MIN_RTT)))
        return woken

    def ended(self) -> List[PingWaiter]:
        """The connection ended: every waiter, to wake without a round-trip time."""
        waiting, self._waiting = self._waiting, {}
        return [waiter for _, waiter in waiting.values() if waiter is not None]


def wake(woken: List[Tuple[PingWaiter, float]]) -> None:
    """Wake the waiters of answered pings (outside the state lock)."""
    for waiter, rtt in woken:
        waiter._resolve(rtt)


def wake_closed(waiters: List[PingWaiter]) -> None:
    """Wake the waiters of pings no pong will answer."""
    for waiter in waiters:
        waiter._resolve(None)
