"""Small helpers shared by the tests (importable as ``helpers``)."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, List


def our_threads() -> List[threading.Thread]:
    """Threads started by simplews that are still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("simplews") and t.is_alive()]


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (bounded wait for tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
