"""One scheduler thread for the whole process: keepalive pings and idle reads.

Every open connection registers here. The scheduler wakes each connection at
the time the connection asks for (``Connection._tick`` returns it), so pings,
pong timeouts and the reading of control frames while nobody calls ``recv()``
cost one thread in total, not one per connection. The thread starts with the
first registration and exits when the last connection is gone.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["Scheduler", "scheduler"]

logger = logging.getLogger("simplews")


class Scheduler:
    """Calls ``tick(now) -> next time or None`` on registered objects when due."""

    def __init__(self, name: str = "simplews-keepalive") -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: List[Tuple[float, int, Any]] = []
        self._entries: Dict[int, Tuple[float, Any]] = {}
        self._counter = itertools.count()
        self._thread: Optional[threading.Thread] = None

    def register(self, obj: Any, when: float) -> None:
        """Call ``obj._tick`` at monotonic time ``when`` (and then as it asks)."""
        with self._cond:
            self._push(obj, when)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            else:
                self._cond.notify()

    def reschedule(self, obj: Any, when: float) -> None:
        """Move ``obj``'s next call earlier (later calls are ignored if not earlier)."""
        with self._cond:
            entry = self._entries.get(id(obj))
            if entry is None or entry[0] <= when:
                return
            self._push(obj, when)
            self._cond.notify()

    def unregister(self, obj: Any) -> None:
        """Stop calling ``obj``; join the thread if nothing is left to serve."""
        with self._cond:
            self._entries.pop(id(obj), None)
            if self._entries:
                return
            thread = self._thread
            self._heap.clear()
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)

    def _push(self, obj: Any, when: float) -> None:
        seq = next(self._counter)
        self._entries[id(obj)] = (when, obj)
        heapq.heappush(self._heap, (when, seq, obj))

    @property
    def running(self) -> bool:
        """Whether the scheduler thread is alive."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _next_due(self) -> Optional[Any]:
        """Wait for the next due entry; ``None`` once nothing is registered."""
        with self._cond:
            while True:
                if not self._entries:
                    self._thread = None
                    return None
                if not self._heap:
                    self._cond.wait()
                    continue
                when, _, obj = self._heap[0]
                entry = self._entries.get(id(obj))
                if entry is None or entry[0] != when or entry[1] is not obj:
                    heapq.heappop(self._heap)  # stale: unregistered or rescheduled
                    continue
                delay = when - time.monotonic()
                if delay > 0:
                    self._cond.wait(delay)
                    continue
                heapq.heappop(self._heap)
                return obj

    def _run(self) -> None:
        """The scheduler thread's loop."""
        while True:
            obj = self._next_due()
            if obj is None:
                return
            try:
                when = obj._tick(time.monotonic())
            except Exception:  # never let one connection stop keepalive for all
                logger.exception("keepalive tick failed")
                when = None
            with self._cond:
                if id(obj) not in self._entries:
                    continue
                if when is None:
                    del self._entries[id(obj)]
                else:
                    self._push(obj, when)


#: the process-wide scheduler
scheduler = Scheduler()
