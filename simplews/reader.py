"""The reader role of a connection: parse on the caller's thread, keep what was read ahead.

Whoever holds the role reads: a thread in ``recv()`` (or the connection's own
thread running callbacks) reads and parses on its own thread, with no hand-off
per message. When nobody has read for :data:`IDLE_AFTER` seconds, the
scheduler takes the role for a moment whenever the socket has data
(:meth:`Reader.read_idle`), so pings are answered, pongs seen and closes
completed while the application is busy elsewhere; up to ``max_queue``
messages are read ahead, then TCP pushes back.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import TYPE_CHECKING, Any, Deque, Optional, Union

from .exceptions import WebSocketTimeout
from .protocol import Close, Message, Pong, State

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

__all__ = ["Reader", "IDLE_AFTER"]

#: How long after its reader left a connection counts as unread (the scheduler then reads it).
IDLE_AFTER = 0.2
_NO_QUEUE: Any = ()  # stands for an empty message queue not created yet


class Reader:
    """The reader role and the messages read ahead, for one :class:`~simplews.Connection`."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.role = threading.Lock()
        # created on the first queued message: an idle connection does not pay for a deque
        self.queue: Deque[Union[str, bytes]] = _NO_QUEUE
        #: when the reader role was last released (a new connection counts as unread from the start)
        self.left_at = time.monotonic() - IDLE_AFTER
        #: since when a peer's violation waits for the messages before it to be taken
        self.deferred_since: Optional[float] = None

    def recv(self, timeout: Optional[float]) -> Union[str, bytes]:
        """The next message, reading on this thread if none is queued (see ``Connection.recv``)."""
        queue = self.queue
        if queue:
            try:
                message = queue.popleft()
            except IndexError:  # another thread took it
                pass
            else:
                # left(), minus what only a reader that held the role needs
                when = self.left_at = time.monotonic()
                conn = self.conn
                if conn._next_tick is None or when + IDLE_AFTER < conn._next_tick:
                    conn._schedule(when + IDLE_AFTER)
                return message
        deadline = None if timeout is None else time.monotonic() + timeout
        if not self.role.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            raise WebSocketTimeout("recv() timed out")
        conn = self.conn
        protocol, stream = conn.protocol, conn.stream
        try:
            while True:
                queue = self.queue
                if queue:
                    return queue.popleft()
                if conn._closed.done:
                    raise protocol.closed_exception()
                if protocol.failure_deferred:  # every earlier message was handed out
                    self.release_failure()
                    continue
                try:
                    data = stream.read(deadline)
                except WebSocketTimeout:
                    raise WebSocketTimeout("recv() timed out") from None
                self.process(data)
        finally:
            self.role.release()
            self.left()

    def process(self, data: bytes) -> None:
        """Feed bytes to the core and act on the events (reader role held)."""
        conn = self.conn
        protocol = conn.protocol
        with conn._state_lock:
            events = protocol.receive_data(data)
        for event in events:
            if type(event) is Message:
                queue = self.queue
                if queue is _NO_QUEUE:
                    queue = self.queue = collections.deque()
                limit = conn.options.max_queue
                if conn._closing and limit is not None and len(queue) >= limit:
                    conn.logger.debug("%r: message dropped while closing (the queue is full)", conn)
                else:
                    queue.append(event.data)
            elif type(event) is Pong:
                conn._got_pong(event.data)
            elif type(event) is Close:
                conn.logger.debug("%r: received close %d %r", conn, event.code, event.reason)
        if protocol.has_pending or conn.stream.owed or protocol.state is not State.OPEN:
            conn._writer.flush()  # pongs, close frames, TLS records; the end of the stream once closing
        if not data:
            conn._terminate()
        elif protocol.failure_deferred:
            if not self.queue:
                self.release_failure()
            elif self.deferred_since is None:
                self.deferred_since = time.monotonic()
                conn._schedule(self.deferred_since + (conn.options.close_timeout or IDLE_AFTER))
        elif protocol.state is not State.OPEN:
            conn._arm_close_deadline()
            if protocol.failure is not None:
                conn.logger.info("%r: failing connection: %s", conn, protocol.failure)

    def release_failure(self) -> None:
        """Send the close frame of a peer's violation held back until earlier messages were handed out."""
        conn = self.conn
        with conn._state_lock:
            conn.protocol.release_failure()
        conn.logger.info("%r: failing connection: %s", conn, conn.protocol.failure)
        conn._arm_close_deadline()
        conn._writer.flush()

    def read_idle(self) -> None:
        """Read what the socket holds now, for a connection nobody is reading (the scheduler's thread)."""
        conn = self.conn
        if not self.role.acquire(blocking=False):
            self.left_at = time.monotonic()  # a reader is back: it reads
            return
        try:
            for _ in range(16):
                if conn.closed or self.full():
                    break
                data = conn.stream.read_nowait()
                if data is None:
                    break
                self.process(data)
        finally:
            self.role.release()
            if conn.closed:
                conn._release_descriptor()

    def left(self) -> None:
        """The reader role was released: if nobody takes it again soon, the scheduler reads."""
        now = self.left_at = time.monotonic()
        when = now + IDLE_AFTER
        conn = self.conn
        if conn._closed.done:
            conn._release_descriptor()
        elif conn._next_tick is None or when < conn._next_tick:
            conn._schedule(when)

    def idle(self, now: float) -> bool:
        """Whether nobody reads and the queue has room: the scheduler should watch for data."""
        return not self.role.locked() and not self.full() and now - self.left_at >= IDLE_AFTER

    def full(self) -> bool:
        """Whether ``max_queue`` messages wait (closing aside: the close must still be read)."""
        limit = self.conn.options.max_queue
        return not self.conn._closing and limit is not None and len(self.queue) >= limit
