"""An open WebSocket connection: feed bytes to the core, write what it says, hand events on.

A connection is its reader role (:class:`simplews.reader.Reader`: who reads,
and what was read ahead), its one write path (:class:`simplews.writer.Writer`)
and the judgment of whether the peer is still there
(:class:`simplews.liveness.Liveness`), tied together here with its life: open,
close, end, and the deadlines the process-wide scheduler keeps for it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, FrozenSet, Iterable, List, Optional, Tuple, Union

from .exceptions import ConnectionClosed, WebSocketTimeout
from .handshake import Headers, Request, Response
from .keepalive import READ, WRITE, scheduler
from .liveness import Liveness, Verdict
from .messages import Messages, convert
from .options import ConnectionOptions
from .pieces import is_piecewise
from .pings import Pings, wake_closed
from .protocol import CLOSED, OPEN, Ping, Pong, Protocol, State
from .reader import IDLE_AFTER, Reader
from .rooms import CLIENT_ROOMS, Rooms
from .stream import Stream
from .writer import Writer

if TYPE_CHECKING:  # pragma: no cover
    from .tls import TLS

__all__ = ["Connection"]

logger = logging.getLogger("simplews")
# Quiet by default (this module is imported by everything that logs): without it
# Python's last-resort handler would print our warnings and errors to stderr.
logger.addHandler(logging.NullHandler())



class _Latch:
    """A one-shot event: a single lock held until :meth:`set` (far smaller than ``threading.Event``)."""

    __slots__ = ("_lock", "done")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        #: whether :meth:`set` was called
        self.done = False

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self.done

    def set(self) -> None:
        """Set the latch once; later calls do nothing."""
        if not self.done:
            self.done = True
            self._lock.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until set or ``timeout``; return whether it is set."""
        if self.done:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            self._lock.release()
        return self.done


def _addresses(sock: socket.socket) -> Tuple[Any, Any]:
    """The peer's and our own address of a connected socket (``None`` once it is gone)."""
    try:
        return sock.getpeername(), sock.getsockname()
    except OSError:
        return None, None


def _no_hook(event: Union[Ping, Pong]) -> None:
    pass


class Connection(Messages):
    """One open WebSocket connection, client or server side.

    Thread-safe: any thread may :meth:`send`, :meth:`ping` or :meth:`close`;
    one thread at a time receives (others calling :meth:`recv` wait their turn).
    """

    def __init__(
        self,
        stream: Stream,
        protocol: Protocol,
        options: Optional[ConnectionOptions] = None,
        *,
        request: Optional[Request] = None,
        response: Optional[Response] = None,
        subprotocol: Optional[str] = None,
    ) -> None:
        options = options or ConnectionOptions()
        self.stream = stream
        self.protocol = protocol
        self.options = options
        #: the opening handshake request (what the client sent)
        self.request = request
        #: the opening handshake response the client received (``None`` on the server side)
        self.response = response
        #: the negotiated subprotocol, if any
        self.subprotocol = subprotocol
        self.id = os.urandom(4).hex()
        #: Where this connection logs. The ``logger`` option as given if it is an adapter, else an
        #: adapter of it (or of ``logging.getLogger("simplews")``) whose ``extra`` is ``{"websocket": self}``.
        self.logger: Any = options.logger
        if not isinstance(self.logger, logging.LoggerAdapter):
            self.logger = logging.LoggerAdapter(self.logger or logger, {"websocket": self})
        protocol.logger = self.logger
        self._state_lock = threading.Lock()  # the core's state: held for in-memory work only
        self._term_lock = threading.Lock()
        self._reader = Reader(self)
        self._writer = Writer(stream, protocol, self._state_lock, self._terminate, self._writer_left)
        self._closed = _Latch()
        self._closing = False
        self._close_deadline: Optional[float] = None
        self._pings = Pings()
        self._liveness = Liveness(options, stream, self._reader.left_at)
        self._watching = 0
        self._rooms: Rooms = CLIENT_ROOMS  # a server sets its own before the connection opens
        #: the rooms this connection is in (see :meth:`join`); always empty on a client
        self.rooms: FrozenSet[str] = frozenset()
        self._next_tick: Optional[float] = None
        self.remote_address, self.local_address = _addresses(stream.sock)
        protocol.defer_failure_close = True  # answer messages received before a violation first
        protocol.auto_pong = options.auto_pong
        #: runs a ping or pong event for the on_ping / on_pong hooks, on the thread that receives
        self._control_hook: Callable[[Union[Ping, Pong]], None] = _no_hook
        stream.backlog_started = self._backlog_started

    def _open(self, greeting: bytes = b"", leftover: bytes = b"") -> None:
        """Start: send ``greeting`` (a server's 101) before anything else, then take ``leftover``."""
        self._writer.open(greeting)
        if self._closed.done:
            return  # the greeting could not be sent
        with self._reader.role:  # the scheduler reads as soon as it knows us: what it reads comes after leftover
            scheduler.register(self)
            self._schedule(self._next_wake(time.monotonic()))
            if leftover:
                self._reader.process(leftover)
        self._writer.flush()

    # --- public API -------------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """The peer's handshake headers (request headers on a server, response headers on a client)."""
        message = self.response if self.protocol.is_client else self.request
        return message.headers if message is not None else Headers()

    @property
    def path(self) -> str:
        """The request path (with query string) of the opening handshake."""
        return self.request.path if self.request is not None else "/"

    @property
    def sock(self) -> socket.socket:
        """The plain socket under the connection. TLS, if any, runs in memory over it, see :attr:`tls`."""
        return self.stream.sock

    @property
    def tls(self) -> Optional[TLS]:
        """The TLS session of a ``wss://`` connection, else ``None``; it tells ``version``, ``cipher()`` and ``getpeercert()``."""
        return self.stream.tls

    @property
    def state(self) -> State:
        """The protocol state (OPEN, CLOSING or CLOSED)."""
        return self.protocol.state

    @property
    def closed(self) -> bool:
        """Whether the connection is fully closed (transport gone)."""
        return self._closed.done

    @property
    def close_code(self) -> Optional[int]:
        """The close code once closed (1006 if the connection dropped), else ``None``."""
        return self.protocol.close_code if self._closed.done else None

    @property
    def close_reason(self) -> Optional[str]:
        """The close reason once closed, else ``None``."""
        return self.protocol.close_reason if self._closed.done else None

    def send(
        self,
        message: Union[str, bytes, bytearray, memoryview, Iterable[Union[str, bytes, bytearray, memoryview]]],
        *,
        text: Optional[bool] = None,
        compress: bool = True,
        timeout: Optional[float] = None,
    ) -> None:
        """Send a message: ``str`` as text, bytes-like as binary, any other iterable of those in pieces.

        Safe from any thread: the whole message goes out before another
        sender's, control frames between its frames. An iterable (a generator)
        is one fragmented message, asked for each piece once the frames before
        it are out; its first piece fixes the type (a later piece of the other
        type: ``TypeError``, and 1011). ``compress=False`` skips compression
        (pieces are never compressed). ``timeout``: see the threading guide.
        Raises :class:`ConnectionClosed` once the connection is closing or closed.
        """
        if self._closing:
            raise self.protocol.closed_exception()
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            if is_piecewise(message):
                self._writer.send_pieces(message, text, deadline, self._broken)
            else:
                self._writer.send(message, text, compress, deadline, self._broken)
        except WebSocketTimeout:
            raise
        except OSError as exc:
            self._terminate()
            raise self.protocol.closed_exception() from exc

    def _broken(self, exc: BaseException) -> None:
        """A message whose first frames went out cannot be completed: fail with 1011."""
        self._fail(1011, f"message could not be completed: {exc}")

    def recv(self, timeout: Optional[float] = None, *, decode: Optional[bool] = None) -> Union[str, bytes]:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        ``decode=False`` returns text as UTF-8 ``bytes``, ``decode=True``
        returns binary as ``str`` (:class:`~simplews.InvalidMessage` if it is
        not UTF-8); text is validated as UTF-8 on arrival either way. Blocks up
        to ``timeout`` seconds (forever if ``None``) and raises
        :class:`~simplews.WebSocketTimeout` then. Raises
        :class:`ConnectionClosed` once the connection is closed and every
        message received before the close has been returned.
        """
        message = self._reader.recv(timeout)
        return message if decode is None else convert(message, decode)

    def pong(self, data: Union[str, bytes] = b"") -> None:
        """Send an unsolicited pong (a unidirectional heartbeat)."""
        with self._state_lock:
            self.protocol.send_pong(data)
        self._writer.flush()

    def close(self, code: int = 1000, reason: str = "", *, timeout: Optional[float] = None) -> None:
        """Close the connection and wait (up to ``close_timeout``) for the handshake to finish.

        Idempotent and safe from any thread, including a callback. Messages the
        peer sent before its close frame stay readable with :meth:`recv` (up to
        ``max_queue``). After it returns the socket is closed and no thread of
        the connection is left.
        """
        if self._closed.done:
            return
        self._start_close(code, reason)
        self._wait_closed(self.options.close_timeout if timeout is None else timeout)

    def join(self, room: str) -> None:
        """Join ``room`` (server side): ``server.broadcast(message, room=room)`` reaches this connection until it leaves or ends."""
        self._rooms.join(self, room)

    def leave(self, room: str) -> None:
        """Leave ``room`` (nothing happens if this connection is not in it)."""
        self._rooms.leave(self, room)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        role = "client" if self.protocol.is_client else "server"
        return f"<simplews.Connection {self.id} {role} {self.protocol.state.name} {self.remote_address}>"

    # --- reading ----------------------------------------------------------------------

    def _watch_now(self) -> None:
        """Let the scheduler read at once if nobody is reading (a pong is expected)."""
        if not self._reader.role.locked() and not self._closed.done:
            self._reader.left_at = time.monotonic() - IDLE_AFTER
            self._update_watch()

    def _offer(self, message: Any, text: Optional[bool], frames: Optional[List[Any]], window: float) -> bool:
        """Take a broadcast without blocking (see :meth:`simplews.writer.Writer.offer`).

        A peer that takes nothing for ``window`` seconds while it is owed a
        broadcast is closed with 1008.
        """
        if self._closing or not self._writer.offer(message, text, frames, window):
            return False
        if self._writer.window is not None:  # part of it waits for the peer
            self._schedule(time.monotonic() + window)
        return True

    def _backlog_started(self) -> None:
        """The stream had to wait for the kernel: time how long the peer takes to drain it."""
        timeout = self.options.send_timeout
        if timeout is not None:
            self._schedule(time.monotonic() + timeout)

    # --- closing ----------------------------------------------------------------------

    def _start_close(self, code: Optional[int], reason: str) -> None:
        """Queue our close frame and write it when the writer role allows, without waiting for the answer."""
        if self._closed.done:
            return
        with self._state_lock:
            self.protocol.send_close(code, reason)  # raises for a bad code, before anything changes
        self._closing = True  # refuse new sends: a sender looping on send() cannot starve the close
        self.logger.debug("%r: closing with %s", self, code)
        self._arm_close_deadline()
        self._writer.flush()

    def _wait_closed(self, timeout: Optional[float]) -> None:
        """Finish the close handshake: read until the end of the stream, or force it at ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            reader = self._reader
            if reader.role.acquire(timeout=0.05 if left is None else min(0.05, left)):
                try:
                    while not self._closed.done:
                        reader.process(self.stream.read(deadline))
                except WebSocketTimeout:
                    break
                finally:
                    reader.role.release()
                    if self._closed.done:
                        self._release_descriptor()
            else:
                self._closed.wait(0.05 if left is None else min(0.05, left))
        if not self._closed.done:
            self.logger.debug("%r: close timed out; aborting", self)
            self._terminate()

    def _arm_close_deadline(self) -> None:
        """Start the clock on how long the peer has to finish closing."""
        if self._close_deadline is None:
            timeout = self.options.close_timeout
            self._close_deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
            self._schedule(self._close_deadline)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection from our side (keepalive, drain bound) without waiting for the peer."""
        self.logger.info("%r: %s; failing with %d", self, reason, code)
        with self._state_lock:
            self.protocol.fail(code, reason)
        self._writer.flush()
        self._terminate()

    def _terminate(self) -> None:
        """End the transport once and for all; wake every thread blocked on it."""
        with self._term_lock:
            if self._closed.done:
                return
            with self._state_lock:
                if self.protocol.state is not CLOSED:
                    self.protocol.abort()
                waiters = self._pings.ended()
            self._closed.set()
            self.stream.shutdown()
        wake_closed(waiters)  # nobody will answer; do not leave waiters hanging
        self._update_watch()  # closed: watch nothing
        scheduler.unregister(self)
        self._release_descriptor()
        self.logger.info("%r: closed code=%s reason=%r", self, self.protocol.close_code, self.protocol.close_reason)

    def _release_descriptor(self) -> None:
        """Close the socket once no thread can be inside it (whoever leaves last does it)."""
        reader_role = self._reader.role
        if self.stream.closed or not reader_role.acquire(blocking=False):
            return
        try:
            if self._writer.role.acquire(blocking=False):
                try:
                    self.stream.close()
                finally:
                    self._writer.role.release()
        finally:
            reader_role.release()

    # --- the scheduler's side (never blocks) --------------------------------------------

    def _schedule(self, when: Optional[float]) -> None:
        """Make sure the scheduler looks at this connection by ``when``."""
        if when is not None and (self._next_tick is None or when < self._next_tick):
            self._next_tick = when
            scheduler.at(self, when)

    def _ready(self, events: int) -> None:
        """The socket is readable or writable while nobody reads or writes it."""
        if events & READ:
            self._reader.read_idle()
        if events & WRITE:
            self._writer.flush()
        self._update_watch()

    def _writer_left(self) -> None:
        """The writer role was released: close the descriptor if the connection ended meanwhile, else watch."""
        if self._closed.done:
            self._release_descriptor()
        else:
            self._update_watch()

    def _update_watch(self) -> None:
        """Watch for data while nobody reads, and for room while bytes are owed and nobody writes."""
        events = 0
        if not self._closed.done:
            if self._reader.idle(time.monotonic()):
                events |= READ
            if self.stream.owed and not self._writer.role.locked():
                events |= WRITE
        if events != self._watching:
            self._watching = events
            scheduler.watch(self, self.stream.sock, events)

    def _tick(self, now: float) -> Optional[float]:
        """Act on what is due (closing, draining, keepalive, an unread connection); return when to look again."""
        self._next_tick = None
        if self._closed.done:
            return None
        stream = self.stream
        if self._close_deadline is not None and now >= self._close_deadline:
            self.logger.debug("%r: close timeout reached; aborting", self)
            self._terminate()
            return None
        if self._reader.failure_due(now):
            self._reader.release_failure()  # the earlier messages were taken, or nobody takes them: fail now
        writer = self._writer
        if writer.window is not None and stream.busy_since is None and not writer.deferred:
            writer.window = None  # the broadcasts that waited went out
        verdict = self._liveness.judge(now, self.protocol.state, writer.window)
        if verdict is Verdict.PING:
            self._keepalive_ping(now)
        elif verdict is Verdict.STALLED:
            self._fail(1011, "send timed out: the peer takes nothing")
            return None
        elif verdict is Verdict.TOO_SLOW:
            self._fail(1008, "too slow to receive")
            return None
        elif verdict is Verdict.DEAD:
            if self.protocol.state is OPEN:
                self._fail(1011, "keepalive ping timeout")
            else:  # our close frame went unanswered by a dead peer: 1006, without waiting longer
                self._terminate()
            return None
        self._update_watch()
        self._next_tick = when = self._next_wake(now)
        return when

    def _keepalive_ping(self, now: float) -> None:
        """Queue a keepalive ping and write it if the writer role is free."""
        payload = os.urandom(4)
        with self._state_lock:
            try:
                self.protocol.send_ping(payload)
            except ConnectionClosed:
                return
            self._liveness.pinged(payload, now)
            self._pings.sent(payload)
        self._writer.flush()

    def _next_wake(self, now: float) -> Optional[float]:
        """When the scheduler must look again: the earliest real deadline, ``None`` if there is none."""
        due = self._liveness.due(self.protocol.state, self._writer.window)
        if self._close_deadline is not None:
            due.append(self._close_deadline)
        reader = self._reader
        if not self._watching & READ and not reader.role.locked():
            due.append(reader.left_at + IDLE_AFTER)
        if reader.deferred_since is not None and self.protocol.failure_deferred:
            due.append(reader.failure_at())
        return max(min(due), now + 0.001) if due else None
