"""The outbox of a :class:`~simplews.Client`: what ``send()`` is given while no connection can take it.

Opt-in and bounded (in messages and in bytes), with a chosen overflow policy.
The client drains it, in order, once the next connection's ``on_open`` has
returned. Delivery stays at-most-once: a message handed to a connection that
then dies may be lost, and the outbox never resends what it handed over.
"""

from __future__ import annotations

import collections
import threading
from typing import Any, Deque, Dict, List, Optional, Tuple, Union

from .exceptions import OutboxFull

__all__ = ["Outbox", "OVERFLOW_POLICIES"]

#: what :meth:`Outbox.put` does when a message does not fit
OVERFLOW_POLICIES = ("drop_oldest", "drop_newest", "raise")

Message = Union[str, bytes]
_Item = Tuple[Message, Dict[str, Any], int]


class Outbox:
    """A bounded, thread-safe queue of messages waiting for a connection.

    ``max_messages`` and ``max_bytes`` (the UTF-8 size of text) bound it; ``None``
    leaves that bound out (not both). When a message does not fit, ``overflow``
    decides: ``"drop_oldest"`` drops queued messages from the front until it
    fits, ``"drop_newest"`` drops the new message, ``"raise"`` raises
    :class:`OutboxFull`. A message larger than ``max_bytes`` on its own never
    fits: dropped, or :class:`OutboxFull`. ``dropped`` counts what overflow dropped.
    """

    def __init__(self, max_messages: Optional[int] = 1000, max_bytes: Optional[int] = 1 << 20, overflow: str = "drop_oldest") -> None:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, not {overflow!r}")
        if max_messages is None and max_bytes is None:
            raise ValueError("an outbox needs a bound: max_messages, max_bytes or both")
        for name, value in (("max_messages", max_messages), ("max_bytes", max_bytes)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1 (or None for no such bound), not {value!r}")
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.overflow = overflow
        #: how many messages overflow dropped so far
        self.dropped = 0
        self._items: Deque[_Item] = collections.deque()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        """The bytes queued (text counted in UTF-8)."""
        return self._bytes

    def put(self, message: Message, **kwargs: Any) -> None:
        """Queue ``message`` (with the keywords of ``send()``) at the end, applying the overflow policy."""
        size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
        with self._lock:
            if not self._fits(size, empty=True):
                self._overflow(f"a message of {size} bytes is larger than the outbox ({self.max_bytes} bytes)")
                return
            while not self._fits(size):
                if self.overflow != "drop_oldest":
                    self._overflow(f"the outbox is full ({len(self._items)} messages, {self._bytes} bytes)")
                    return
                self._bytes -= self._items.popleft()[2]
                self.dropped += 1
            self._items.append((message, kwargs, size))
            self._bytes += size

    def unget(self, message: Message, **kwargs: Any) -> None:
        """Put back at the front a message just taken that could not be sent (bounds not checked: it was in)."""
        size = len(message.encode("utf-8")) if isinstance(message, str) else len(message)
        with self._lock:
            self._items.appendleft((message, kwargs, size))
            self._bytes += size

    def get(self) -> Optional[Tuple[Message, Dict[str, Any]]]:
        """Take the first message and its keywords, or ``None`` if the outbox is empty."""
        with self._lock:
            if not self._items:
                return None
            message, kwargs, size = self._items.popleft()
            self._bytes -= size
            return message, kwargs

    def clear(self) -> List[Message]:
        """Empty the outbox; return what it held, in order."""
        with self._lock:
            messages = [item[0] for item in self._items]
            self._items.clear()
            self._bytes = 0
            return messages

    def _fits(self, size: int, empty: bool = False) -> bool:
        """Whether ``size`` more bytes fit now (or in an empty outbox)."""
        count, used = (0, 0) if empty else (len(self._items), self._bytes)
        return (self.max_messages is None or count < self.max_messages) and (self.max_bytes is None or used + size <= self.max_bytes)

    def _overflow(self, why: str) -> None:
        """The new message does not fit: drop it, or raise."""
        if self.overflow == "raise":
            raise OutboxFull(why)
        self.dropped += 1
