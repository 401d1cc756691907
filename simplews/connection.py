"""An open WebSocket connection over a blocking socket.

This is the only place that owns a socket after the handshake. Reading is done
by whoever holds the *reader role*: a thread in :meth:`Connection.recv` reads
and parses on its own thread (no hand-off per message), and while nobody
reads, the process-wide keepalive scheduler briefly takes the role to answer
pings, notice pongs and complete a close handshake. Writes go through one
write lock so the frames of two messages never interleave; protocol state is
guarded by a separate short lock that is never held during I/O, so a writer
blocked on a slow peer never stops the reader.
"""

from __future__ import annotations

import collections
import logging
import os
import select
import socket
import struct
import threading
import time
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple, Type, Union

from .exceptions import ConnectionClosed, ConnectionClosedOK, WebSocketTimeout
from .handshake import Headers, Request, Response
from .keepalive import scheduler
from .protocol import Close, Message, Ping, Pong, Protocol, State
from .transport import is_tls_socket, tls_timeout_errors

__all__ = ["Connection", "DEFAULT_CLOSE_TIMEOUT", "DEFAULT_PING_INTERVAL", "DEFAULT_PING_TIMEOUT"]

logger = logging.getLogger("simplews")
# Quiet by default (this module is imported by everything that logs): without it
# Python's last-resort handler would print our warnings and errors to stderr.
logger.addHandler(logging.NullHandler())

DEFAULT_PING_INTERVAL = 20.0
DEFAULT_PING_TIMEOUT = 20.0
DEFAULT_CLOSE_TIMEOUT = 10.0
DEFAULT_MAX_QUEUE = 32
#: how often the socket of a connection that nobody is reading is polled for control frames
IDLE_POLL_INTERVAL = 0.2
#: how often to look again at a connection whose reader is active (it answers control frames itself)
BUSY_POLL_INTERVAL = 5.0
# Reads start small so that an idle connection blocked in recv() holds a small
# buffer, and grow while reads come back full. 64 KiB stays under glibc's mmap
# threshold: larger reads map and unmap memory on every call.
_MIN_READ = 512
_READ_SIZE = 64 * 1024
#: TLS plaintext written per SSL_write when it must not block: fits whenever poll() reports POLLOUT
TLS_RECORD_SIZE = 2048

_TIMEOUT_ERRORS: Tuple[Type[BaseException], ...] = (BlockingIOError, socket.timeout)
_timeval = struct.Struct("@ll")


def _poll_in(sock: socket.socket, timeout: float) -> bool:
    """Whether ``sock`` becomes readable within ``timeout`` seconds."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(int(timeout * 1000) + (1 if timeout else 0)))


_NO_QUEUE: Any = ()  # stands for an empty message queue not created yet


class _ReadTimeout(Exception):
    """Internal: a socket read hit its deadline."""


class _Latch:
    """A one-shot event: a single lock held until :meth:`set` (far smaller than ``threading.Event``)."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._set

    def set(self) -> None:
        """Set the latch once; later calls do nothing."""
        if not self._set:
            self._set = True
            self._lock.release()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait until set or ``timeout``; return whether it is set."""
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
            self._lock.release()
        return self._set


class _PongWaiter(threading.Event):
    """An event set by the matching pong; waiting on it reads the socket if nobody does."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self._conn = conn

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the pong (or the connection's end); ``True`` once it arrived or ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        conn = self._conn
        while not self.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            slice_ = 0.05 if left is None else min(0.05, left)
            if conn._read_lock.acquire(blocking=False):
                try:
                    if not conn._closed.is_set():
                        conn._read_step(time.monotonic() + slice_)
                except WebSocketTimeout:
                    pass
                finally:
                    conn._read_lock.release()
            else:
                super().wait(slice_)
        return True


class Connection:
    """One open WebSocket connection, client or server side.

    Thread-safe: any thread may :meth:`send`, :meth:`ping` or :meth:`close`;
    one thread at a time receives (others calling :meth:`recv` wait their turn).
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: Protocol,
        *,
        request: Optional[Request] = None,
        response: Optional[Response] = None,
        subprotocol: Optional[str] = None,
        leftover: bytes = b"",
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        send_timeout: Optional[float] = None,
        max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
    ) -> None:
        self.sock = sock
        self.protocol = protocol
        #: the opening handshake request (what the client sent)
        self.request = request
        #: the opening handshake response the client received (``None`` on the server side)
        self.response = response
        #: the negotiated subprotocol, if any
        self.subprotocol = subprotocol
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.max_queue = max_queue
        self.send_timeout = send_timeout
        self.id = os.urandom(4).hex()
        self._is_tls = is_tls_socket(sock)
        self._timeout_errors = tls_timeout_errors() if self._is_tls else _TIMEOUT_ERRORS
        self._state_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._term_lock = threading.Lock()
        # created on the first queued message: an idle connection does not pay for a deque
        self._queue: Deque[Union[str, bytes]] = _NO_QUEUE
        self._closed = _Latch()
        self._rcvtimeo: Optional[float] = None
        self._rsize = _MIN_READ
        self._closing = False
        self._close_deadline: Optional[float] = None
        self._pings: Dict[bytes, Tuple[threading.Event, float]] = {}
        self._last_ping: Optional[float] = None
        self._awaiting_pong: Optional[bytes] = None
        self._pending_data = leftover
        protocol.defer_failure_close = True  # answer messages received before a violation first
        self._deferred_since: Optional[float] = None
        try:
            self.remote_address: Any = sock.getpeername()
            self.local_address: Any = sock.getsockname()
        except OSError:
            self.remote_address = self.local_address = None
        if send_timeout is not None:
            self._set_timeo(socket.SO_SNDTIMEO, send_timeout)
        now = time.monotonic()
        self._last_ping = now
        first = now + (ping_interval if ping_interval else IDLE_POLL_INTERVAL)
        scheduler.register(self, min(first, now + IDLE_POLL_INTERVAL))
        if leftover:
            self._process(leftover, queue_only=True)

    # --- public API -------------------------------------------------------------------

    @property
    def headers(self) -> Headers:
        """The peer's handshake headers (request headers on a server, response headers on a client)."""
        if self.protocol.is_client:
            return self.response.headers if self.response is not None else Headers()
        return self.request.headers if self.request is not None else Headers()

    @property
    def path(self) -> str:
        """The request path (with query string) of the opening handshake."""
        return self.request.path if self.request is not None else "/"

    @property
    def state(self) -> State:
        """The protocol state (OPEN, CLOSING or CLOSED)."""
        return self.protocol.state

    @property
    def closed(self) -> bool:
        """Whether the connection is fully closed (transport gone)."""
        return self._closed.is_set()

    @property
    def close_code(self) -> Optional[int]:
        """The close code once closed (1006 if the connection dropped), else ``None``."""
        return self.protocol.close_code if self._closed.is_set() else None

    @property
    def close_reason(self) -> Optional[str]:
        """The close reason once closed, else ``None``."""
        return self.protocol.close_reason if self._closed.is_set() else None

    def send(self, message: Union[str, bytes, bytearray, memoryview], *, text: Optional[bool] = None) -> None:
        """Send a message: ``str`` as text, bytes-like as binary.

        Large messages are fragmented automatically. Safe from any thread; the
        whole message is written before another sender's. Raises
        :class:`ConnectionClosed` once the connection is closing or closed.
        """
        if self._closing:
            raise self.protocol.closed_exception()
        with self._write_lock:
            with self._state_lock:
                out = self.protocol.send_message(message, text=text)
                if self.protocol.has_pending:
                    out[:0] = self.protocol.data_to_send()
            self._write(out)
        if self.protocol.has_pending:
            self._flush_pending()

    def recv(self, timeout: Optional[float] = None) -> Union[str, bytes]:
        """Receive the next message: ``str`` for text, ``bytes`` for binary.

        Blocks up to ``timeout`` seconds (forever if ``None``) and raises
        :class:`~simplews.WebSocketTimeout` then. Raises
        :class:`ConnectionClosed` once the connection is closed and every
        message received before the close has been returned.
        """
        queue = self._queue
        if queue:
            try:
                return queue.popleft()
            except IndexError:  # another thread took it
                pass
        if timeout is None:
            deadline = None
            self._read_lock.acquire()
        else:
            deadline = time.monotonic() + timeout
            if not self._read_lock.acquire(timeout=max(timeout, 0)):
                raise WebSocketTimeout("recv() timed out")
        protocol = self.protocol
        try:
            while True:
                queue = self._queue
                if queue:
                    return queue.popleft()
                if self._closed.is_set():
                    raise protocol.closed_exception()
                if protocol.failure_deferred:  # every earlier message was handed out
                    self._release_failure()
                    continue
                if deadline is None and self._rcvtimeo == 0.0 and self._close_deadline is None and not self._is_tls:
                    # hot path: a blocking read with nothing special going on
                    try:
                        data = self.sock.recv(self._rsize)
                    except OSError as exc:
                        logger.debug("%r: read failed: %s", self, exc)
                        self._terminate()
                        continue
                    self._adapt_read_size(len(data))
                    self._process(data)
                else:
                    self._read_step(deadline)
        finally:
            self._read_lock.release()

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        """Iterate over incoming messages; ends on a normal close, raises on an error."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def ping(self, data: Optional[Union[str, bytes]] = None) -> threading.Event:
        """Send a ping; the returned event is set when the matching pong arrives.

        Its ``wait(timeout)`` reads the socket itself when no other thread is
        reading, so the pong is seen at once even on a connection nobody reads.
        """
        payload = os.urandom(4) if data is None else (data.encode() if isinstance(data, str) else bytes(data))
        event = _PongWaiter(self)
        with self._write_lock:
            with self._state_lock:
                out = self.protocol.send_ping(payload)
                if self.protocol.has_pending:
                    out[:0] = self.protocol.data_to_send()
                self._pings[payload] = (event, time.monotonic())
            self._write(out)
        return event

    def pong(self, data: Union[str, bytes] = b"") -> None:
        """Send an unsolicited pong (a unidirectional heartbeat)."""
        with self._write_lock:
            with self._state_lock:
                out = self.protocol.send_pong(data)
            self._write(out)

    def close(self, code: int = 1000, reason: str = "", *, timeout: Optional[float] = None) -> None:
        """Close the connection and wait (up to ``close_timeout``) for the handshake to finish.

        Idempotent and safe from any thread, including a callback. After it
        returns the socket is closed and no thread of the connection is left.
        Messages the peer sent before its close frame (they crossed ours) stay
        readable with :meth:`recv` and iteration, up to ``max_queue`` of them.
        """
        if self._closed.is_set():
            return
        self._start_close(code, reason)
        self._wait_closed(self.close_timeout if timeout is None else timeout)

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        role = "client" if self.protocol.is_client else "server"
        return f"<simplews.Connection {self.id} {role} {self.protocol.state.name} {self.remote_address}>"

    # --- closing ----------------------------------------------------------------------

    def _start_close(self, code: Optional[int], reason: str) -> None:
        """Send our close frame (if not sent yet) without waiting for the answer."""
        if self._closed.is_set():
            return
        # A send blocked on a peer that stops reading holds the write lock; waiting
        # for it without bound would hang close() and server shutdown.
        self._closing = True  # refuse new sends, so a sender looping on send() cannot starve us
        if not self._acquire_write_for_close(self.close_timeout):
            logger.info("%r: a send is blocked; aborting instead of closing", self)
            self._terminate()
            return
        sent = False
        try:
            with self._state_lock:
                out = self.protocol.data_to_send() if self.protocol.has_pending else []
                out += self.protocol.send_close(code, reason)
                self._arm_close_deadline()
            if out:
                self._write(out)
        except (ConnectionClosed, WebSocketTimeout):
            pass
        else:
            logger.debug("%r: sent close %s", self, code)
            sent = True
        finally:
            self._write_lock.release()
        if sent and self.protocol.failure is not None:
            self._after_close_frame()

    def _acquire_write_for_close(self, timeout: Optional[float]) -> bool:
        """Take the write lock to send a close, reading (and dropping) incoming data meanwhile.

        A sender blocked on a peer that is itself blocked writing to us (nobody
        reads here) only gets unstuck if someone reads: the closing thread does,
        discarding messages, since the application asked to close.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._write_lock.acquire(timeout=0.02):
            if self._closed.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return False
            self._read_available(64, discard=True)
        return True

    def _wait_closed(self, timeout: Optional[float]) -> None:
        """Finish the close handshake: read the peer's close and end of stream, or force it."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            if self._read_lock.acquire(timeout=0.05):
                try:
                    while not self._closed.is_set():
                        # what the peer sent before its close frame stays readable, up to max_queue
                        self._read_step(deadline, discard=self._queue_full())
                except (_ReadTimeout, WebSocketTimeout):
                    break
                finally:
                    self._read_lock.release()
            else:
                self._closed.wait(0.05 if remaining is None else min(0.05, remaining))
        if not self._closed.is_set():
            logger.debug("%r: close timed out; aborting", self)
            self._terminate()

    def _queue_full(self) -> bool:
        """Whether ``max_queue`` messages are waiting for ``recv()``."""
        return self.max_queue is not None and len(self._queue) >= self.max_queue

    def _arm_close_deadline(self) -> None:
        """Start the clock on how long the peer has to finish closing."""
        if self._close_deadline is None:
            t = self.close_timeout
            self._close_deadline = time.monotonic() + (t if t is not None else 3600.0)
            scheduler.reschedule(self, self._close_deadline)

    def _terminate(self) -> None:
        """Close the transport once and for all; wake any blocked reader."""
        with self._term_lock:
            if self._closed.is_set():
                return
            with self._state_lock:
                if self.protocol.state is not State.CLOSED:
                    self.protocol.abort()
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                self.sock.close()
            except OSError:
                pass
            self._closed.set()
            for event, _ in self._pings.values():
                event.set()  # nobody will answer; do not leave waiters hanging
            self._pings.clear()
        logger.info(
            "%r: closed code=%s reason=%r", self, self.protocol.close_code, self.protocol.close_reason
        )
        scheduler.unregister(self)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection from our side (e.g. keepalive timeout) without waiting."""
        with self._state_lock:
            self.protocol.fail(code, reason)
            out = self.protocol.data_to_send()
        if out and self._write_lock.acquire(blocking=False):
            try:
                self._write_nowait(b"".join(bytes(b) for b in out))
            finally:
                self._write_lock.release()
        self._terminate()

    # --- reading ----------------------------------------------------------------------

    def _read_step(self, deadline: Optional[float], *, discard: bool = False) -> None:
        """Read once from the socket (reader role held) and process what arrived."""
        closing = self._close_deadline
        if closing is not None and (deadline is None or closing < deadline):
            deadline = closing
        try:
            data = self._sock_recv(deadline)
        except _ReadTimeout:
            if self._close_deadline is not None and time.monotonic() >= self._close_deadline:
                self._terminate()
                return
            raise WebSocketTimeout("recv() timed out") from None
        except OSError as exc:
            logger.debug("%r: read failed: %s", self, exc)
            self._terminate()
            return
        self._process(data, discard=discard)

    def _process(self, data: bytes, *, discard: bool = False, queue_only: bool = False) -> None:
        """Feed bytes to the protocol and act on the events."""
        protocol = self.protocol
        with self._state_lock:
            events = protocol.receive_data(data)
        if protocol.has_pending:
            self._flush_pending(block=not queue_only)
        for event in events:
            if type(event) is Message:
                if not discard:
                    queue = self._queue
                    if queue is _NO_QUEUE:
                        queue = self._queue = collections.deque()
                    queue.append(event.data)
            elif type(event) is Pong:
                self._got_pong(event.data)
            elif type(event) is Close:
                logger.debug("%r: received close %d %r", self, event.code, event.reason)
                self._after_close_frame()
            elif type(event) is Ping:
                pass
        if not data:
            self._terminate()
        elif protocol.failure_deferred:
            if discard or not self._queue:
                self._release_failure(block=not queue_only)
            elif self._deferred_since is None:
                self._deferred_since = time.monotonic()
        elif protocol.failure is not None:
            logger.info("%r: failing connection: %s", self, protocol.failure)
            self._after_close_frame()

    def _release_failure(self, block: bool = True) -> None:
        """Send the close frame of a peer's violation held back until earlier messages were handed out."""
        with self._state_lock:
            self.protocol.release_failure()
        if self.protocol.has_pending:
            self._flush_pending(block=block)
        logger.info("%r: failing connection: %s", self, self.protocol.failure)
        if self.protocol.has_pending:  # a busy writer sends our close; no FIN before it
            self._arm_close_deadline()
        else:
            self._after_close_frame()

    def _after_close_frame(self) -> None:
        """The close handshake is done on our side: let the server drop TCP first."""
        self._arm_close_deadline()
        if not self.protocol.is_client:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._terminate()

    def _got_pong(self, payload: bytes) -> None:
        """Resolve the ping this pong answers (and every earlier one)."""
        with self._state_lock:
            entry = self._pings.get(payload)
            if entry is None:
                return
            sent_at = entry[1]
            for key, (event, when) in list(self._pings.items()):
                if when <= sent_at:
                    event.set()
                    del self._pings[key]
            if self._awaiting_pong is not None and self._awaiting_pong not in self._pings:
                self._awaiting_pong = None

    def _set_timeo(self, opt: int, seconds: float) -> None:
        """Set SO_RCVTIMEO / SO_SNDTIMEO (0 means block forever)."""
        sec = int(seconds)
        usec = int((seconds - sec) * 1e6)
        if seconds > 0 and sec == 0 and usec == 0:
            usec = 1
        self.sock.setsockopt(socket.SOL_SOCKET, opt, _timeval.pack(sec, usec))

    def _sock_recv(self, deadline: Optional[float], *, nonblocking: bool = False) -> bytes:
        """Read what is available, blocking until ``deadline`` (forever if ``None``)."""
        sock = self.sock
        if nonblocking:
            if not self._is_tls:
                try:
                    return sock.recv(self._rsize, socket.MSG_DONTWAIT)
                except self._timeout_errors:
                    raise _ReadTimeout() from None
            timeo = 0.01
        elif deadline is None:
            timeo = 0.0
        else:
            timeo = deadline - time.monotonic()
            if timeo <= 0:
                raise _ReadTimeout()
        # SSL_read ignores SO_RCVTIMEO (CPython retries it forever): wait for bytes with poll()
        if self._is_tls and timeo and not sock.pending():  # type: ignore[attr-defined]
            if not _poll_in(sock, 0.0 if nonblocking else timeo):
                raise _ReadTimeout()
        if timeo != self._rcvtimeo:
            self._set_timeo(socket.SO_RCVTIMEO, timeo)
            self._rcvtimeo = timeo
        try:
            data = sock.recv(self._rsize)
        except self._timeout_errors:
            raise _ReadTimeout() from None
        self._adapt_read_size(len(data))
        return data

    def _adapt_read_size(self, got: int) -> None:
        """Grow the read size while reads fill it; fall back once traffic is light."""
        size = self._rsize
        if got >= size:
            if size < _READ_SIZE:
                self._rsize = size * 4
        elif size > _MIN_READ and got < _MIN_READ // 4:
            self._rsize = _MIN_READ

    # --- writing ----------------------------------------------------------------------

    def _write_nowait(self, data: bytes) -> bool:
        """Write a small frame without blocking (write lock held); ``False`` if it could not go.

        Used by the scheduler thread, which must never wait on one slow peer.
        A partial write corrupts the stream, so it ends the connection.
        """
        sock = self.sock
        try:
            if self._is_tls:
                # SSL_write ignores SO_SNDTIMEO (CPython retries it forever): write only if poll()
                # reports room, which a small frame then always fits
                poller = select.poll()
                poller.register(sock.fileno(), select.POLLOUT)
                if not poller.poll(0):
                    return False
                sock.sendall(data)
                return True
            sent = sock.send(data, socket.MSG_DONTWAIT)
        except self._timeout_errors:
            if self._is_tls:
                self._terminate()
            return False
        except OSError:
            self._terminate()
            return False
        if sent < len(data):
            self._terminate()
            return False
        return True

    def _write(self, buffers: List[Any]) -> None:
        """Write buffers in order (write lock held); a failure ends the connection."""
        sock = self.sock
        try:
            if self._is_tls and self.send_timeout is not None:
                for buf in buffers:
                    self._tls_sendall(buf, self.send_timeout)
            elif len(buffers) == 1 or self._is_tls:
                for buf in buffers:
                    sock.sendall(buf)
            else:
                self._sendmsg_all(buffers)
        except self._timeout_errors:
            logger.info("%r: send timed out; aborting", self)
            self._terminate()
            raise WebSocketTimeout("send() timed out; connection aborted") from None
        except OSError as exc:
            logger.debug("%r: write failed: %s", self, exc)
            self._terminate()
            raise self.protocol.closed_exception() from exc

    def _tls_sendall(self, buf: Any, timeout: float) -> None:
        """``sendall`` over TLS that raises ``socket.timeout`` after ``timeout`` s without progress.

        SSL_write ignores SO_SNDTIMEO (CPython retries it forever), so write small
        records, each only once poll() reports room for it.
        """
        sock = self.sock
        view = memoryview(buf).cast("B")
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLOUT)
        wait_ms = max(1, int(timeout * 1000))
        while view:
            if not poller.poll(wait_ms):
                raise socket.timeout("send timed out")
            view = view[sock.send(view[:TLS_RECORD_SIZE]) :]

    def _sendmsg_all(self, buffers: List[Any]) -> None:
        """``sendall`` for a list of buffers, via ``sendmsg`` (no joining copy)."""
        sock = self.sock
        views = [memoryview(b).cast("B") if not isinstance(b, bytes) else memoryview(b) for b in buffers]
        while views:
            sent = sock.sendmsg(views[:64])
            while sent:
                first = len(views[0])
                if sent >= first:
                    sent -= first
                    views.pop(0)
                else:
                    views[0] = views[0][sent:]
                    sent = 0

    def _flush_pending(self, block: bool = True) -> None:
        """Write frames the protocol queued itself (pongs, close replies).

        If another thread holds the write lock, that thread flushes them when
        it finishes, so the reader never waits behind a slow sender.
        """
        while self.protocol.has_pending:
            if not self._write_lock.acquire(blocking=False):
                if not block:
                    return
                if not self._write_lock.acquire(timeout=0.01):
                    continue
            try:
                with self._state_lock:
                    out = self.protocol.data_to_send()
                if out:
                    self._write(out)
            except (ConnectionClosed, WebSocketTimeout):
                return
            finally:
                self._write_lock.release()

    # --- keepalive (called by the scheduler thread) -----------------------------------

    def _tick(self, now: float) -> Optional[float]:
        """Send due pings, detect dead peers, and read while nobody else does."""
        if self._closed.is_set():
            return None
        if self._close_deadline is not None and now >= self._close_deadline:
            logger.debug("%r: close timeout reached; aborting", self)
            self._terminate()
            return None
        polled = self._idle_read()
        if self._closed.is_set():
            return None
        since = self._deferred_since
        if since is not None and self.protocol.failure_deferred and now - since >= (self.close_timeout or IDLE_POLL_INTERVAL):
            self._release_failure(block=False)  # nobody takes the earlier messages: fail now
        interval, timeout = self.ping_interval, self.ping_timeout
        state = self.protocol.state
        if interval and state in (State.OPEN, State.CLOSING):
            awaiting = self._awaiting_pong
            if awaiting is not None and timeout is not None:
                entry = self._pings.get(awaiting)
                if entry is not None and now - entry[1] >= timeout:
                    logger.info("%r: keepalive ping timeout", self)
                    if state is State.OPEN:
                        self._fail(1011, "keepalive ping timeout")
                    else:  # closing, and the peer is known dead: do not wait out close_timeout
                        self._terminate()
                    return None
            if state is State.OPEN and awaiting is None and self._last_ping is not None and now - self._last_ping >= interval:
                self._keepalive_ping(now)
        # nobody reading: poll soon so pings and closes get answered; a reader handles them itself
        next_time = now + (IDLE_POLL_INTERVAL if polled else BUSY_POLL_INTERVAL)
        if interval and state in (State.OPEN, State.CLOSING):  # wake when the next ping or pong deadline is due
            entry = self._pings.get(self._awaiting_pong) if self._awaiting_pong is not None else None
            if entry is not None and timeout is not None:
                next_time = min(next_time, max(entry[1] + timeout, now + 0.01))
            elif state is State.OPEN and self._awaiting_pong is None and self._last_ping is not None:
                next_time = min(next_time, max(self._last_ping + interval, now + 0.01))
        if self._close_deadline is not None:
            next_time = min(next_time, self._close_deadline)
        return next_time

    def _keepalive_ping(self, now: float) -> None:
        """Send a keepalive ping unless a writer is busy (it will be sent next tick)."""
        if not self._write_lock.acquire(blocking=False):
            return
        try:
            payload = os.urandom(4)
            with self._state_lock:
                out = self.protocol.data_to_send() if self.protocol.has_pending else []
                out += self.protocol.send_ping(payload)
                self._pings[payload] = (threading.Event(), now)
                self._awaiting_pong = payload
            self._last_ping = now
            self._write_nowait(b"".join(bytes(b) for b in out))
        except ConnectionClosed:
            pass
        finally:
            self._write_lock.release()

    def _idle_read(self) -> bool:
        """Read available bytes without blocking, if no thread is reading; ``False`` if one is."""
        return self._read_available(16, discard=False)

    def _read_available(self, rounds: int, *, discard: bool) -> bool:
        """Take the reader role if free and process what the socket holds, without blocking.

        Queued messages stop at ``max_queue`` (TCP backpressure) unless they are
        discarded. Returns ``False`` if another thread holds the reader role.
        """
        if not self._read_lock.acquire(blocking=False):
            return False
        try:
            limit = None if discard else self.max_queue
            for _ in range(rounds):
                if self._closed.is_set() or (limit is not None and len(self._queue) >= limit):
                    break
                try:
                    data = self._sock_recv(None, nonblocking=True)
                except _ReadTimeout:
                    break
                except OSError:
                    self._terminate()
                    break
                self._process(data, discard=discard, queue_only=True)
        finally:
            self._read_lock.release()
        return True
