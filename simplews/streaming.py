"""Receiving one message in fragments, as they arrive, for messages too large to hold.

:func:`fragments` hands out the pieces of the next message as the core
parses them (text decoded up to the last whole character, UTF-8 still
validated). The reader role is held only while reading: between two
fragments the application runs without it, and the connection reads ahead
at most what one read brings (a fragment waiting blocks further reads), so
memory stays bounded by the read size, whatever the message size.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Iterator, Optional, Union

from .exceptions import WebSocketTimeout
from .protocol import Fragment, Ping, Pong

if TYPE_CHECKING:  # pragma: no cover
    from .reader import Reader

__all__ = ["fragments"]

#: how long a generator given up on waits for the reader role to tidy up after itself
_TIDY_TIMEOUT = 5.0


def _take(reader: Reader, timeout: Optional[float]) -> None:
    """Take the reader role within ``timeout`` (:class:`WebSocketTimeout` otherwise)."""
    if not reader.role.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
        raise WebSocketTimeout("recv_streaming() timed out")


def fragments(reader: Reader, max_size: Optional[int], timeout: Optional[float], every: bool = False) -> Iterator[Fragment]:
    """The fragments of the next message; ``timeout`` bounds the wait for each one.

    A message read ahead whole comes as one fragment. Giving up before the
    last fragment drops the rest of the message. ``every``: from now on every
    message is streamed, also those that arrive while nobody receives.
    """
    conn = reader.conn
    protocol = conn.protocol
    _take(reader, timeout)
    held, started, done = True, False, False
    try:
        while reader.queue:  # a message read ahead whole comes as one fragment, after the hooks before it
            item = reader.queue.popleft()
            if isinstance(item, (Ping, Pong)):
                _run_hook(reader, item)
                continue
            done = True
            reader.role.release()
            held = False
            yield Fragment(item, True)
            return
        with conn._state_lock:
            early = protocol.stream_next(max_size, every)
        started = reader.streaming = True
        reader.stream_all = reader.stream_all or every
        for event in early:
            reader.fragment(event)  # type: ignore[arg-type]
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            queued = reader.fragments
            if queued:
                event = queued.popleft()
                if isinstance(event, (Ping, Pong)):
                    _run_hook(reader, event)
                    continue
                done = event.fin
                reader.role.release()
                held = False
                reader.left()  # the scheduler reads while the application works on this fragment
                yield event
                if done:
                    return
                _take(reader, timeout)
                held = True
                deadline = None if timeout is None else time.monotonic() + timeout
                continue
            reader.read_more(deadline, "recv_streaming()")
    finally:
        if started and not done:
            _give_up(reader, held)
        if held:
            reader.role.release()
        reader.left()


def _run_hook(reader: Reader, event: Union[Ping, Pong]) -> None:
    """Run a ping or pong hook without the reader role, so that a slow hook does not stop reading."""
    reader.role.release()
    try:
        reader.conn._control_hook(event)
    finally:
        reader.role.acquire()


def _give_up(reader: Reader, held: bool) -> None:
    """The reader stopped before the last fragment: drop the rest of the message."""
    if not held and not reader.role.acquire(timeout=_TIDY_TIMEOUT):
        return
    try:
        conn = reader.conn
        queued = list(reader.fragments)
        if queued:
            reader.fragments.clear()
        reader.streaming = False
        for event in queued:
            if type(event) is not Fragment:
                reader.hold(event)  # a ping or pong: its hook still runs, after the message
        ended = any(type(event) is Fragment and event.fin for event in queued)
        with conn._state_lock:
            conn.protocol.stream_cancel()
            in_progress = conn.protocol.receiving_message
        reader.discarding = not ended and in_progress
    finally:
        if not held:
            reader.role.release()
