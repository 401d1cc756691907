"""One scheduler thread for the whole process: real deadlines, and readiness of unread sockets.

Every open connection registers here. The scheduler keeps one timer per
connection at the time the connection asks for (``_tick(now)`` returns it:
the next ping, a pong or close deadline; ``None`` for none, so a connection
with keepalive off and nothing pending costs no timer at all), and one
:mod:`selectors` selector that tells it which connections that nobody is
reading have data, or room to write what they owe (``_ready(events)``).
Idle connections therefore cost nothing. Both callbacks run on the scheduler
thread and never block.

Where the platform's selector is ``select()`` (Windows: at most 512 sockets
per call), connections are spread over several selectors, each with a thread
of its own; elsewhere one selector serves them all. The threads start with
the first registration and exit when the last connection is gone.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import selectors
import socket
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["Scheduler", "scheduler", "READ", "WRITE"]

logger = logging.getLogger("simplews")

READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def _capacity(cls: Any) -> Optional[int]:
    """Sockets one selector of ``cls`` may watch (plus its wake socket), ``None`` if unbounded."""
    return 500 if issubclass(cls, selectors.SelectSelector) else None


class _Shard:
    """One selector and the thread that waits on it."""

    def __init__(self, owner: Scheduler, primary: bool) -> None:
        self.owner = owner
        self.generation = owner._generation
        self.primary = primary  # the primary shard's thread also runs the timers
        self.selector = selectors.DefaultSelector()
        self.wake_r, self.wake_w = socket.socketpair()
        self.wake_r.setblocking(False)
        self.wake_w.setblocking(False)
        self.selector.register(self.wake_r, READ)
        self.watched = 0
        self.thread = threading.Thread(target=self.run, name="simplews-keepalive", daemon=True)
        self.thread.start()

    def wake(self) -> None:
        try:
            self.wake_w.send(b"x")
        except OSError:  # full (already awake) or closed (exiting)
            pass

    def run(self) -> None:
        """Wait for readiness (and, on the primary shard, timers) until nothing is left."""
        owner = self.owner
        try:
            while True:
                if owner._done or owner._generation != self.generation:
                    return
                timeout = owner._next_timeout() if self.primary else None
                try:
                    ready = self.selector.select(timeout)
                except (OSError, ValueError):  # a socket closed while we waited: look again
                    time.sleep(0.001)
                    continue
                for key, events in ready:
                    if key.fileobj is self.wake_r:
                        _drain(self.wake_r)
                        continue
                    _call(key.data._ready, events)
                if self.primary:
                    owner._run_timers()
        finally:
            self.selector.close()
            for sock in (self.wake_r, self.wake_w):
                sock.close()


def _drain(sock: socket.socket) -> None:
    try:
        while sock.recv(4096):
            pass
    except OSError:
        pass


def _call(method: Any, *args: Any) -> Any:
    """Call a connection's callback; never let one connection stop the scheduler for all."""
    try:
        return method(*args)
    except Exception:
        logger.exception("scheduler callback failed")
        return None


class Scheduler:
    """Timers and readiness for every connection of the process (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._heap: List[Tuple[float, int, Any]] = []
        self._due: Dict[int, float] = {}  # id(obj) -> the time of its one live timer entry
        self._objects: Dict[int, Any] = {}
        self._where: Dict[int, Tuple[_Shard, Any, int]] = {}  # id(obj) -> (shard, socket, events)
        self._shards: List[_Shard] = []
        self._counter = itertools.count()
        self._done = True
        self._generation = 0  # threads of an earlier generation are on their way out

    @property
    def running(self) -> bool:
        """Whether the scheduler's threads are alive."""
        return any(shard.thread.is_alive() for shard in self._shards)

    def register(self, obj: Any) -> None:
        """Start serving ``obj`` (its ``_tick`` and ``_ready``); starts the thread if needed."""
        with self._lock:
            self._objects[id(obj)] = obj
            if self._done:
                self._done = False
                self._generation += 1
                self._shards = [_Shard(self, primary=True)]

    def unregister(self, obj: Any) -> None:
        """Stop serving ``obj``; once nothing is left, the threads exit (and are joined)."""
        with self._lock:
            self._objects.pop(id(obj), None)
            self._due.pop(id(obj), None)
            self._unwatch(id(obj))
            if self._objects:
                return
            self._done = True
            self._heap.clear()
            shards = list(self._shards)
        for shard in shards:
            shard.wake()
        for shard in shards:
            if shard.thread is not threading.current_thread():
                shard.thread.join(5.0)

    def at(self, obj: Any, when: Optional[float]) -> None:
        """Call ``obj._tick`` at monotonic time ``when`` at the latest (``None``: nothing to add).

        Timers only move earlier: a tick that comes early just tells the next
        time, so callers on any thread never race each other.
        """
        if when is None:
            return
        with self._lock:
            key = id(obj)
            if key not in self._objects:
                return
            due = self._due.get(key)
            if due is not None and due <= when:
                return
            first = self._heap[0][0] if self._heap else None
            self._due[key] = when
            heapq.heappush(self._heap, (when, next(self._counter), obj))
            shard = self._shards[0] if self._shards else None
        if shard is not None and (first is None or when < first):
            shard.wake()

    def watch(self, obj: Any, sock: Any, events: int) -> None:
        """Call ``obj._ready(events)`` when ``sock`` is ready for ``events`` (0: stop watching)."""
        with self._lock:
            key = id(obj)
            if key not in self._objects and events:
                return
            place = self._where.get(key)
            if place is not None and place[2] == events:
                return
            if not events:
                self._unwatch(key)
                return
            if place is not None:
                shard = place[0]
                shard.selector.modify(sock, events, obj)
            else:
                shard = self._shard_with_room()
                shard.selector.register(sock, events, obj)
                shard.watched += 1
            self._where[key] = (shard, sock, events)
        if isinstance(shard.selector, selectors.SelectSelector):
            shard.wake()  # select() sees a new set only at its next call

    def _unwatch(self, key: int) -> None:
        """Forget a socket's registration (lock held)."""
        place = self._where.pop(key, None)
        if place is not None:
            shard, sock, _ = place
            try:
                shard.selector.unregister(sock)
            except (KeyError, ValueError, OSError):
                pass
            shard.watched -= 1

    def _shard_with_room(self) -> _Shard:
        """A selector that may watch one more socket, starting a new one if all are full (lock held)."""
        limit = _capacity(type(self._shards[0].selector))
        for shard in self._shards:
            if limit is None or shard.watched < limit:
                return shard
        shard = _Shard(self, primary=False)
        self._shards.append(shard)
        return shard

    # --- on the primary shard's thread ------------------------------------------------------

    def _next_timeout(self) -> Optional[float]:
        """Seconds until the next timer (``None``: none)."""
        with self._lock:
            heap = self._heap
            while heap:
                when, _, obj = heap[0]
                if self._due.get(id(obj)) != when:
                    heapq.heappop(heap)  # stale: replaced or cancelled
                    continue
                return max(0.0, when - time.monotonic())
            return None

    def _run_timers(self) -> None:
        """Run every timer that is due."""
        now = time.monotonic()
        while True:
            with self._lock:
                heap = self._heap
                if not heap or heap[0][0] > now:
                    return
                when, _, obj = heapq.heappop(heap)
                if self._due.get(id(obj)) != when:
                    continue
                del self._due[id(obj)]
            self.at(obj, _call(obj._tick, now))


#: the process-wide scheduler
scheduler = Scheduler()
