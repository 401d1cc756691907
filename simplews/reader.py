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
from .protocol import OPEN, Close, Fragment, Message, Ping, Pong

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
        #: the scheduler reads (the application may still be answering the last message)
        self.reading_idle = False
        #: queue pings and pongs too, for the connection's ``on_ping`` / ``on_pong`` hooks
        self.hooks = False
        #: a message is being streamed: its fragments, and the pings and pongs between them, go here
        self.streaming = False
        #: every message is streamed (``on_fragment``): nothing is read ahead whole
        self.stream_all = False
        self.fragments: Deque[Any] = _NO_QUEUE
        #: drop the rest of a streamed message its reader gave up on
        self.discarding = False

    def recv(self, timeout: Optional[float]) -> Union[str, bytes]:
        """The next message, reading on this thread if none is queued (see ``Connection.recv``).

        Pings and pongs queued for the hooks before it run their hook first,
        with the reader role released (a slow hook does not stop reading).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            item = self.next_item(deadline)
            if isinstance(item, (Ping, Pong)):
                self.conn._control_hook(item)
                continue
            return item

    def next_item(self, deadline: Optional[float]) -> Union[str, bytes, Ping, Pong]:
        """The next message or hook event, reading on this thread if none is queued."""
        queue = self.queue
        if queue:
            try:
                item = queue.popleft()
            except IndexError:  # another thread took it
                pass
            else:
                # left(), minus what only a reader that held the role needs
                when = self.left_at = time.monotonic()
                conn = self.conn
                if conn._next_tick is None or when + IDLE_AFTER < conn._next_tick:
                    conn._schedule(when + IDLE_AFTER)
                return item
        if deadline is None:
            self.role.acquire()
        elif not self.role.acquire(True, max(deadline - time.monotonic(), 0)):
            raise WebSocketTimeout("recv() timed out")
        try:
            while True:
                queue = self.queue
                if queue:
                    return queue.popleft()
                self.read_more(deadline, "recv()")
        finally:
            self.role.release()
            self.left()

    def read_more(self, deadline: Optional[float], caller: str) -> None:
        """Move the connection on once, for a reader holding the role that found nothing queued.

        Raises :class:`ConnectionClosed` once closed; sends a violation's close
        held back for messages that are now all handed out; else reads (until
        ``deadline``, then :class:`WebSocketTimeout` naming ``caller``) and processes.
        """
        conn = self.conn
        protocol = conn.protocol
        if conn._closed.done:
            raise protocol.closed_exception()
        if protocol.failure_deferred:  # every earlier message was handed out
            self.release_failure()
            return
        try:
            data = conn.stream.read(deadline)
        except WebSocketTimeout:
            raise WebSocketTimeout(f"{caller} timed out") from None
        self.process(data)

    def process(self, data: bytes) -> None:
        """Feed bytes to the core and act on the events (reader role held)."""
        conn = self.conn
        protocol = conn.protocol
        state_lock = conn._state_lock
        state_lock.acquire()  # not ``with``: it costs twice as much, on every read
        try:
            events = protocol.receive_data(data)
        finally:
            state_lock.release()
        for event in events:
            if type(event) is Fragment:
                self.fragment(event)
            elif type(event) is Message:
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
                if self.hooks:
                    self.hold(event)
            elif type(event) is Ping:
                if self.hooks:
                    self.hold(event)
            elif type(event) is Close:
                conn.logger.debug("%r: received close %d %r", conn, event.code, event.reason)
        if protocol.has_pending or conn.stream.owed or protocol.state is not OPEN:
            conn._writer.flush()  # pongs, close frames, TLS records; the end of the stream once closing
        if not data:
            conn._terminate()
        elif protocol.failure_deferred:
            now = time.monotonic()
            if self.deferred_since is None:
                self.deferred_since = now
            if self.failure_due(now):
                self.release_failure()
            else:
                conn._schedule(self.failure_at())
        elif protocol.state is not OPEN:
            conn._arm_close_deadline()
            if protocol.failure is not None:
                conn.logger.info("%r: failing connection: %s", conn, protocol.failure)

    def hold(self, event: Any) -> None:
        """Queue a ping or pong for the hooks, in order with the messages (or fragments) around it."""
        if self.streaming:
            if self.fragments is _NO_QUEUE:
                self.fragments = collections.deque()
            self.fragments.append(event)
            return
        if self.queue is _NO_QUEUE:
            self.queue = collections.deque()
        self.queue.append(event)

    def stream_every(self) -> None:
        """Stream every message from now on (``on_fragment``), before anything is read (nothing in progress)."""
        conn = self.conn
        with conn._state_lock:
            conn.protocol.stream_next(None, every=True)
        self.streaming = self.stream_all = True

    def fragment(self, event: Fragment) -> None:
        """Keep a fragment of the message being streamed, or drop it if its reader gave up."""
        if self.discarding:
            self.discarding = not event.fin
            return
        if self.fragments is _NO_QUEUE:
            self.fragments = collections.deque()
        self.fragments.append(event)
        if event.fin:
            self.streaming = self.stream_all  # what follows is queued as usual, unless every message streams

    def failure_at(self) -> float:
        """When a peer's violation held back (:meth:`failure_due`) is released at the latest."""
        assert self.deferred_since is not None
        return min(self.deferred_since + (self.conn.options.close_timeout or IDLE_AFTER), self.left_at + IDLE_AFTER)

    def failure_due(self, now: float) -> bool:
        """Whether the close frame of a peer's violation may go now.

        Once every message before it was handed out and the application is
        back for more, or has been away :data:`IDLE_AFTER` (it may still be
        answering the last one); in any case after ``close_timeout``.
        """
        if self.deferred_since is None or not self.conn.protocol.failure_deferred:
            return False
        if now - self.deferred_since >= (self.conn.options.close_timeout or IDLE_AFTER):
            return True
        return not self.queue and (self.role.locked() and not self.reading_idle or now - self.left_at >= IDLE_AFTER)

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
        self.reading_idle = True
        try:
            for _ in range(16):
                if conn.closed or self.full():
                    break
                data = conn.stream.read_nowait()
                if data is None:
                    break
                self.process(data)
        finally:
            self.reading_idle = False
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
        if self.fragments:  # a fragment waits for the streaming reader: read no further
            return True
        return not self.conn._closing and limit is not None and len(self.queue) >= limit
