"""The bytes of one connected socket, in and out, with TLS in memory or without.

:class:`Stream` is the only code that calls ``recv`` and ``send`` on a
connection's socket, from the opening handshake to the end. One thread at a
time reads (the connection's reader role) and one at a time writes (its
writer role); each has its own socket object on the one file descriptor, so
each has its own timeout and neither toggles the other's. The descriptor is
non-blocking and every wait is CPython's own (poll, or select on Windows), so
nothing here is platform-specific.

Bytes the kernel did not take yet are *owed* and kept in order; TLS records
produced while reading (TLS 1.3 key updates) join them, so a partial write
never corrupts the stream. :attr:`Stream.last_read` and
:attr:`Stream.last_drain` tell keepalive whether the peer is still there.
"""

from __future__ import annotations

import collections
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Deque, List, Optional, Sequence, Tuple

from .exceptions import OpenTimeout, WebSocketTimeout

if TYPE_CHECKING:  # pragma: no cover
    from .tls import TLS  # imports ssl: only wss:// connections pay for it

__all__ = ["Stream", "FOREVER", "read_head"]

#: the timeout that stands for "no timeout": ``settimeout(None)`` would make the shared descriptor blocking
FOREVER = 86400.0
# Reads start small, so that an idle connection blocked in recv() holds a small
# buffer, and grow while reads come back full. 64 KiB stays under glibc's mmap
# threshold: larger reads map and unmap memory on every call.
_MIN_READ = 512
_MAX_READ = 64 * 1024
#: a writer waiting for the peer looks this often whether the kernel takes a few bytes again
_WRITE_SLICE = 0.25


def _nothing() -> None:
    pass


class Stream:
    """A connected socket as a byte stream; see the module docstring."""

    def __init__(self, sock: socket.socket) -> None:
        sock.settimeout(FOREVER)
        self.sock = sock
        # a second socket object on the same descriptor, for the writer: detached, never closed, at the end
        self._wsock = socket.socket(sock.family, sock.type, sock.proto, fileno=sock.fileno())
        self._wsock.settimeout(0.0)  # writes are first tried without waiting
        self._rtimeout, self._wtimeout = FOREVER, 0.0
        self._layers: List[TLS] = []
        self._lock = threading.Lock()  # TLS objects and the owed bytes
        self._owed: Deque[memoryview] = collections.deque()
        self.owed = 0
        self._rsize = _MIN_READ
        self._early = b""  # plaintext decrypted at the end of a TLS handshake, not read yet
        #: when the peer last sent us bytes, and when it last made room for ours after we had to wait
        self.last_read = self.last_drain = time.monotonic()
        #: since when a write waits for the peer to take bytes (``None``: nothing waits)
        self.busy_since: Optional[float] = None
        self._refused = False  # the kernel refused bytes since it last took some
        #: called when a write starts waiting for the peer (the connection times the wait)
        self.backlog_started: Callable[[], None] = _nothing
        self.closed = False

    # --- TLS ------------------------------------------------------------------------------

    def start_tls(self, tls: TLS, deadline: Optional[float]) -> None:
        """Run a TLS handshake over the stream (inside any TLS layer already there)."""
        done, out = tls.handshake(b"")
        while True:
            if out:
                self.write([self._wrap(out)], deadline, raw=True)
            if done:
                break
            data = self.read(deadline)
            if not data:
                raise ConnectionResetError("the peer closed the connection during the TLS handshake")
            done, out = tls.handshake(data)
        with self._lock:
            self._layers.append(tls)
            # what came with the peer's last handshake message (e.g. a client's first request)
            early, reply = tls.decrypt(None)
            self._owe(self._wrap(reply, len(self._layers) - 1))
        self._early = early

    @property
    def tls_ended(self) -> bool:
        """Whether the TLS stream to the peer ended (close_notify), perhaps in a read that also returned data.

        A peer may then wait for our close_notify with TCP open: reading the
        socket again would block, so the end is answered from here.
        """
        return bool(self._layers) and self._layers[-1].eof

    @property
    def tls(self) -> Optional[TLS]:
        """The innermost TLS layer (the one to the WebSocket peer), if any."""
        return self._layers[-1] if self._layers else None

    def _wrap(self, data: bytes, upto: Optional[int] = None) -> bytes:
        """Encrypt ``data`` through the TLS layers below ``upto`` (all of them by default); lock held."""
        for tls in reversed(self._layers[:upto]):
            data = tls.encrypt(data)
        return data

    def _unwrap(self, data: bytes) -> bytes:
        """Decrypt ``data`` through every layer; queue what a layer answers itself; lock held."""
        for index, tls in enumerate(self._layers):
            data, reply = tls.decrypt(data)
            if reply:
                self._owe(self._wrap(reply, index))
            if not data and not tls.eof:
                return b""
        return data

    # --- reading (one reader at a time) ----------------------------------------------------

    def read(self, deadline: Optional[float]) -> bytes:
        """Plaintext from the peer, blocking until ``deadline`` (forever if ``None``).

        Returns ``b""`` at the end of the stream, or when the connection is lost;
        raises :class:`WebSocketTimeout` at ``deadline``.
        """
        if self._early:
            early, self._early = self._early, b""
            return early
        if self._layers and self.tls_ended:
            return b""
        while True:
            if deadline is None:
                if self._rtimeout != FOREVER:
                    self.sock.settimeout(FOREVER)
                    self._rtimeout = FOREVER
            else:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    raise WebSocketTimeout("timed out waiting for data")
                current = self._rtimeout
                if current > timeout + 0.01 or current < timeout / 2:  # waking a little early costs nothing
                    self.sock.settimeout(timeout)
                    self._rtimeout = timeout
            try:
                data = self.sock.recv(self._rsize)
            except socket.timeout:
                continue
            except OSError:
                return b""
            if not self._layers and data:  # the common case, inline
                self.last_read = time.monotonic()
                if len(data) >= self._rsize or self._rsize > _MIN_READ:
                    self._got(data)
                return data
            data = self._got(data)
            with self._lock:
                plain = self._unwrap(data)
            if plain or not data or self._layers[-1].eof:
                return plain

    def unread(self, data: bytes) -> None:
        """Give back bytes read ahead (before a TLS layer started, say): the next read returns them first."""
        if data:
            self._early = data + self._early

    def read_nowait(self) -> Optional[bytes]:
        """What the peer sent that is already here, without waiting; ``None`` if nothing is."""
        if self._early:
            early, self._early = self._early, b""
            return early
        if self.tls_ended:
            return b""
        if self._rtimeout != 0.0:
            self.sock.settimeout(0.0)
            self._rtimeout = 0.0
        try:
            data = self.sock.recv(self._rsize)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError:
            return b""
        data = self._got(data)
        if not self._layers:
            return data
        with self._lock:
            plain = self._unwrap(data)
        return plain if plain or not data or self._layers[-1].eof else None

    def _got(self, data: bytes) -> bytes:
        """Note what arrived and adapt the read size: grow while reads fill it, shrink when traffic is light."""
        got = len(data)
        if got:
            self.last_read = time.monotonic()
        size = self._rsize
        if got >= size:
            if size < _MAX_READ:
                self._rsize = size * 4
        elif size > _MIN_READ and got < _MIN_READ // 4:
            self._rsize = _MIN_READ
        return data

    # --- writing (one writer at a time) ------------------------------------------------------

    def write(self, buffers: Sequence[Any], deadline: Optional[float] = None, *, raw: bool = False) -> None:
        """Send ``buffers`` in order after anything owed; block until the kernel has it all.

        Raises :class:`WebSocketTimeout` at ``deadline`` (what is left stays owed)
        and ``OSError`` when the connection is lost.
        """
        if self._layers and not raw:
            self.commit(buffers)
        elif self.owed:
            with self._lock:
                for buf in buffers:
                    self._owe(buf)
        else:
            self._send_direct(buffers, deadline)
            if not self.owed:
                self.busy_since = None
            return
        self._drain(deadline)

    def commit(self, buffers: Sequence[Any]) -> None:
        """Queue ``buffers`` to be sent, in order, without sending anything (encrypted now with TLS)."""
        if not buffers:
            return
        with self._lock:
            if self._layers:
                self._owe(self._wrap(b"".join(buffers) if len(buffers) != 1 else bytes(buffers[0])))
            else:
                for buf in buffers:
                    self._owe(buf)

    def push(self) -> bool:
        """Send what is owed as far as the kernel takes it now; ``True`` once nothing is owed."""
        try:
            self._drain(0.0)
        except WebSocketTimeout:
            return False
        return True

    def _owe(self, data: Any) -> None:
        """Append bytes to what is owed (lock held)."""
        if data:
            view = memoryview(data).cast("B")
            self._owed.append(view)
            self.owed += len(view)

    def _backlog(self) -> None:
        """The kernel is full: a write waits for the peer from now on, unless one already does."""
        self._refused = True
        if self.busy_since is None:
            self.busy_since = time.monotonic()
            self.backlog_started()

    def _set_wtimeout(self, timeout: float) -> None:
        if timeout != self._wtimeout:
            self._wsock.settimeout(timeout)
            self._wtimeout = timeout

    def _send_some(self, view: Any, deadline: Optional[float]) -> int:
        """Send what the kernel takes of ``view`` now, or wait for room until ``deadline``.

        The kernel reports room only once a third of its buffer is free; a
        slow reader frees less between our looks. So while we wait, a write is
        also tried every :data:`_WRITE_SLICE` seconds without waiting: any byte
        it takes shows the peer is reading (:attr:`last_drain`).
        """
        wsock = self._wsock
        if self.busy_since is None:
            if self._wtimeout != 0.0:
                self._set_wtimeout(0.0)
            try:
                return wsock.send(view)
            except (BlockingIOError, InterruptedError):
                self._backlog()
        while True:
            timeout = _WRITE_SLICE if deadline is None else min(deadline - time.monotonic(), _WRITE_SLICE)
            if timeout <= 0:
                raise WebSocketTimeout("timed out sending")
            self._set_wtimeout(timeout)
            try:
                return wsock.send(view)
            except socket.timeout:
                pass
            self._set_wtimeout(0.0)
            try:
                return wsock.send(view)
            except (BlockingIOError, InterruptedError):
                pass

    def _sent(self, sent: int, wanted: int) -> None:
        """Keep count of the peer's progress: the kernel taking bytes after it refused some shows the peer reads."""
        if self._refused:
            self._refused = False
            self.last_drain = time.monotonic()
        if sent < wanted:
            self._backlog()

    def _send_direct(self, buffers: Sequence[Any], deadline: Optional[float]) -> None:
        """The common case, nothing owed and no TLS: write the caller's buffers without copying them."""
        for index, buf in enumerate(buffers):
            view = buf
            while True:
                try:
                    sent = self._send_some(view, deadline)
                except WebSocketTimeout:
                    with self._lock:
                        self._owe(view)
                        for rest in buffers[index + 1 :]:
                            self._owe(rest)
                    raise
                size = len(view)
                if sent == size and not self._refused:
                    break
                self._sent(sent, size)
                if sent == size:
                    break
                view = memoryview(view).cast("B")[sent:]

    def _drain(self, deadline: Optional[float]) -> None:
        """Send what is owed until nothing is (``deadline`` 0.0: only what goes without waiting)."""
        owed = self._owed
        while owed:
            head = owed[0]
            if deadline == 0.0:
                self._set_wtimeout(0.0)
                try:
                    sent = self._wsock.send(head)
                except (BlockingIOError, InterruptedError):
                    self._backlog()
                    raise WebSocketTimeout("the kernel takes no more now") from None
            else:
                sent = self._send_some(head, deadline)
            self._sent(sent, len(head))
            with self._lock:
                self.owed -= sent
                if sent == len(head):
                    owed.popleft()
                else:
                    owed[0] = head[sent:]
        self.busy_since = None

    # --- the end ------------------------------------------------------------------------------

    def half_close(self, deadline: Optional[float]) -> None:
        """End our side: TLS close_notify, then FIN; what the peer still sends can be read."""
        try:
            if self._layers:
                with self._lock:
                    self._owe(self._wrap(self._layers[-1].close_notify(), len(self._layers) - 1))
            self._drain(deadline)
            self.sock.shutdown(socket.SHUT_WR)
        except (OSError, WebSocketTimeout):
            self.shutdown()

    def shutdown(self) -> None:
        """Abort both directions now; wakes any thread blocked reading or writing."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        """Release the descriptor (after :meth:`shutdown`, once no thread can be reading or writing)."""
        if self.closed:
            return
        self.closed = True
        self._wsock.detach()
        self.sock.close()
        self._owed.clear()
        self.owed = 0


def read_head(stream: Stream, max_size: Optional[int], deadline: Optional[float]) -> Tuple[bytes, bytes]:
    """Read an HTTP head (through the blank line) from ``stream``; return it and the bytes after it.

    Raises :class:`~simplews.InvalidHandshake` if the peer closes first or the
    head is larger than ``max_size`` (431), and :class:`OpenTimeout` at ``deadline``.
    """
    from .exceptions import InvalidHandshake
    from .handshake import find_head_end

    buf = bytearray()
    while True:
        try:
            chunk = stream.read(deadline)
        except WebSocketTimeout:
            raise OpenTimeout("timed out waiting for the HTTP handshake") from None
        if not chunk:
            raise InvalidHandshake("connection closed during the HTTP handshake")
        start = max(0, len(buf) - 3)
        buf += chunk
        end = find_head_end(buf[start:] if start else buf, None)
        if end >= 0:
            end += start
            if max_size is not None and end > max_size:
                raise InvalidHandshake("HTTP headers too large", status=431)
            return bytes(buf[:end]), bytes(buf[end:])
        if max_size is not None and len(buf) > max_size:
            raise InvalidHandshake("HTTP headers too large", status=431)
