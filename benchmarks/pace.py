"""Rate pacing shared by the fixed peer and the library-side handlers (the ``pi-*`` rows)."""

from __future__ import annotations

import time
from typing import Callable

TICK = 0.001


def pace(rate: float, count: int, emit: Callable[[int], object]) -> None:
    """Call ``emit(k)`` to send ``count`` messages in all at ``rate`` per second: once per
    millisecond tick, with every message due by then (a batch, never a sleep per message).
    The schedule follows the clock, so a late tick sends more, not later."""
    start = time.monotonic()
    sent = 0
    while sent < count:
        due = min(count, int((time.monotonic() - start) * rate) + 1)
        if due > sent:
            emit(due - sent)
            sent = due
        time.sleep(TICK)
