"""The one write path of a connection, used by every writer: ``send()``, pongs, pings, close, keepalive, broadcast.

Whoever holds the *writer role* writes. Control frames queued by the core
meanwhile go out before the holder's next data frame, so a pong waits for at
most one frame of a large message; broadcasts offered meanwhile go out right
after the holder's message. When nobody holds the role, :meth:`Writer.flush`
writes what the kernel takes at once and leaves the rest owed in the stream;
the scheduler finishes it when the socket has room. The only lock held while
waiting on the network is the writer role itself.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Callable, Iterable, Iterator, List, Optional

from .exceptions import ConnectionClosed, WebSocketTimeout
from .pieces import frame_payloads
from .protocol import CLOSED, OPEN, Protocol
from .stream import Stream

__all__ = ["Writer"]

#: Control frames are not added to what is owed beyond this many bytes (the core coalesces pongs meanwhile).
HIGH_WATER = 64 * 1024
#: Broadcast messages waiting for a busy writer, per connection, before more are skipped.
MAX_DEFERRED = 64
#: A broadcast skips a connection that owes more than this already (it is too slow). Over plain
#: TCP the bytes of one broadcast are shared by every connection that owes them.
MAX_OWED = 16 * 1024 * 1024


class Writer:
    """Writes a connection's frames in order, without ever letting a looping sender starve control frames.

    ``state_lock`` guards the core (held for in-memory work only); ``failed()``
    ends the connection after a write error; ``changed()`` is told when the
    writer role is released after a flush (the scheduler may watch for room to
    write) or after a send that the end of the connection interrupted (the
    descriptor may then be closed: nobody else can once the role is released).
    """

    def __init__(
        self, stream: Stream, protocol: Protocol, state_lock: Any, failed: Callable[[], None], changed: Callable[[], None]
    ) -> None:
        self.stream = stream
        self.protocol = protocol
        self.role = threading.Lock()
        #: held for a whole message: a message sent in pieces releases the role between its frames
        self.turn = threading.Lock()
        #: a message sent in pieces is under way: broadcasts wait until it ends
        self.in_pieces = False
        self.opened = False  # nothing but the greeting goes out before this
        #: broadcasts waiting for the writer role: ``(message, text, frames)``
        self.deferred: List[Any] = []
        #: how long a waiting broadcast lets the peer take nothing (seconds), while one waits
        self.window: Optional[float] = None
        self._state_lock = state_lock
        self._failed = failed
        self._changed = changed

    def open(self, greeting: bytes) -> None:
        """Send ``greeting`` (a server's 101) before anything else, then what waited for it."""
        lost = False
        with self.role:
            try:
                if greeting:
                    self.stream.write([greeting])
            except (OSError, WebSocketTimeout):
                lost = True
            with self._state_lock:
                self.opened = True
        if lost:
            self._failed()  # with the role released, so that the descriptor can be closed

    def send(
        self, message: Any, text: Optional[bool], compress: bool = True, deadline: Optional[float] = None, broken: Any = None
    ) -> None:
        """Write one message with the writer role held, fragmented above ``frame_size``.

        Raises ``OSError`` if the connection is lost, :class:`ConnectionClosed`
        if it is closing (a close queued meanwhile still goes out first),
        :class:`WebSocketTimeout` at ``deadline``: what was encoded stays owed
        and goes out in order, but a message fragmented above ``frame_size``
        cannot be completed, so ``broken(exc)`` is called first.
        """
        protocol = self.protocol
        frame_size = protocol.frame_size
        if frame_size is None or len(message) <= frame_size:
            role = self.role
            if deadline is None:  # _acquire() inline: this is every small message's path
                role.acquire()
            else:
                _acquire(role, deadline)
            if not self.in_pieces:  # one frame: holding the writer role keeps it whole, no turn needed
                try:
                    state_lock = self._state_lock
                    state_lock.acquire()  # not ``with``: it costs twice as much, on every message
                    try:
                        out = protocol.send_message(message, text=text, compress=compress)
                        if protocol.has_pending:
                            out[:0] = protocol.data_to_send()
                    finally:
                        state_lock.release()
                    self.stream.write(out, deadline)
                finally:
                    role.release()
                    self._after_write()
                return
            role.release()  # a message sent in pieces is between two frames: after it, in turn
        with self._turn(deadline):
            self._send_frames(message, text, compress, deadline, broken)

    def _send_frames(self, message: Any, text: Optional[bool], compress: bool, deadline: Optional[float], broken: Any) -> None:
        """Write a message frame by frame, fragmented above ``frame_size``, the writer role held (turn held)."""
        _acquire(self.role, deadline)
        try:
            try:
                self._write_frames(self.protocol.send_message_frames(message, text=text, compress=compress), deadline)
            except WebSocketTimeout as exc:
                if broken is not None:
                    broken(exc)
                raise
        finally:
            self.role.release()
            self._after_write()

    @contextlib.contextmanager
    def _turn(self, deadline: Optional[float]) -> Iterator[None]:
        """Hold the turn (one whole message at a time) until ``deadline`` at most."""
        _acquire(self.turn, deadline)
        try:
            yield
        finally:
            self.turn.release()

    def _after_write(self) -> None:
        """After releasing the writer role: act on what happened or was queued while it was held."""
        if self.protocol.state is CLOSED:
            self._changed()  # the connection ended while we held the role: closing the descriptor is ours
        if self.protocol.has_pending or self.deferred:
            self.flush()  # queued while we held the role (a close, too, when this send was refused)
        elif self.stream.owed:
            self._changed()  # left owed by a timeout: the scheduler writes it as the peer reads

    def send_pieces(
        self, pieces: Iterable[Any], text: Optional[bool], deadline: Optional[float], broken: Callable[[BaseException], None]
    ) -> None:
        """Write one message made of ``pieces``, asking for each piece only when the frames before it are out.

        The writer role is released while the iterable makes the next piece, so
        control frames (and a close) go out meanwhile; other messages and
        broadcasts wait for the end. If the message cannot be completed once
        its first frame went out (a piece of the wrong type, an error in the
        iterable, a timeout), ``broken(exc)`` is called before the error is raised.
        """
        protocol, stream = self.protocol, self.stream
        _acquire(self.turn, deadline)
        first = True
        try:
            for is_text, payload, fin in frame_payloads(pieces, protocol.frame_size, text):
                _acquire(self.role, deadline)
                try:
                    with self._state_lock:
                        control = protocol.data_to_send() if protocol.has_pending and stream.owed < HIGH_WATER else []
                        frame = protocol.send_fragment(payload, text=is_text, first=first, fin=fin)
                        self.in_pieces = not fin
                    if control:
                        stream.write(control, deadline)
                    stream.write(frame, deadline)
                finally:
                    self.role.release()
                first = False
        except BaseException as exc:
            if self.in_pieces and not isinstance(exc, ConnectionClosed):
                broken(exc)
            raise
        finally:
            self.in_pieces = False
            self.turn.release()
            self._after_write()

    def _write_frames(self, frames: Iterator[List[Any]], deadline: Optional[float]) -> None:
        """Write a message frame by frame, with queued control frames before each (writer role held)."""
        protocol, stream = self.protocol, self.stream
        while True:
            refused: Optional[ConnectionClosed] = None
            with self._state_lock:
                # control frames first: a close queued meanwhile goes out, and no data frame after it
                control = protocol.data_to_send() if protocol.has_pending and stream.owed < HIGH_WATER else []
                try:
                    frame = next(frames, None)
                except ConnectionClosed as exc:
                    frame, refused = None, exc
            if control:
                stream.write(control, deadline)
            if refused is not None:
                raise refused
            if frame is None:
                return
            stream.write(frame, deadline)

    def flush(self) -> None:
        """Write queued control frames, waiting broadcasts and what is owed, if nobody else is writing.

        Writes only what the kernel takes now; a writer busy on another thread
        writes these itself (control frames before its next frame, broadcasts
        after its message).
        """
        protocol, stream = self.protocol, self.stream
        while not stream.closed:
            if not self.role.acquire(blocking=False):
                return
            try:
                if protocol.has_pending and stream.owed < HIGH_WATER:
                    with self._state_lock:
                        out = protocol.data_to_send()
                    stream.commit(out)
                if self.deferred and self.opened and not self.in_pieces:
                    stream.commit(self._take_deferred())
                if stream.push():
                    self.window = None
                    if protocol.eof_to_send():
                        stream.half_close(0.0)
            except (OSError, WebSocketTimeout):
                self.role.release()
                self._failed()
                return
            self.role.release()
            self._changed()
            if not (protocol.has_pending and stream.owed < HIGH_WATER) and not (self.deferred and self.opened and not self.in_pieces):
                return  # nothing was queued while we held the role

    def offer(self, message: Any, text: Optional[bool], frames: Optional[List[Any]], window: float) -> bool:
        """Take a broadcast without blocking: written now, or after a busy writer's message.

        ``frames`` is the message already encoded for this connection, or
        ``None`` to encode it when it is written (compression keeps the order).
        ``False`` if it cannot be taken: closing, or too much waiting already.
        """
        protocol, stream = self.protocol, self.stream
        if frames is not None and self.role.acquire(False):
            # the common case: nobody writes and nothing waits. No state lock: this only reads, and
            # whatever is queued meanwhile finds the role taken and is written after it (_write_held)
            if protocol.state is OPEN and self._nothing_waits():
                written = self._write_held(frames)
                return self._wait(window) if written is None else written and protocol.state is not CLOSED
            self.role.release()
        state_lock = self._state_lock
        state_lock.acquire()  # not ``with``: it costs twice as much, for every connection of a broadcast
        try:
            if protocol.state is not OPEN:
                return False
            if len(self.deferred) >= MAX_DEFERRED or stream.owed >= MAX_OWED:
                return False
            direct = self._nothing_waits()
            if not direct:
                self.deferred.append((message, text, frames))
        finally:
            state_lock.release()
        if direct:
            written = self._write_now(message, text, frames)
            if written is not None:
                return written and protocol.state is not CLOSED
        return self._wait(window)

    def _nothing_waits(self) -> bool:
        """Whether a broadcast may be written at once: opened, and no message, broadcast or control frame before it."""
        return self.opened and not self.in_pieces and not self.deferred and not self.stream.owed and not self.protocol.has_pending

    def _wait(self, window: float) -> bool:
        """A broadcast waits (deferred, or partly owed): bound how long the peer may take nothing."""
        if self.window is None or window < self.window:
            self.window = window
        if self.opened:
            self.flush()
        return self.protocol.state is not CLOSED  # not taken after all if writing showed the peer gone

    def _write_now(self, message: Any, text: Optional[bool], frames: Optional[List[Any]]) -> Optional[bool]:
        """Write a broadcast at once if the writer role is free.

        ``True`` once written, ``False`` if the connection turned out closing or
        gone, ``None`` if (part of) it waits: deferred behind a busy writer, or owed.
        """
        protocol = self.protocol
        if not self.role.acquire(False):
            with self._state_lock:
                self.deferred.append((message, text, frames))
            return None
        try:
            with self._state_lock:
                if protocol.state is not OPEN:
                    self.role.release()
                    return False
                if self.in_pieces:  # between two frames of a message sent in pieces: after it
                    self.deferred.append((message, text, frames))
                    self.role.release()
                    return None
                if frames is None:
                    frames = protocol.send_message(message, text=text)
        except BaseException:
            self.role.release()
            raise
        return self._write_held(frames)

    def _write_held(self, frames: List[Any]) -> Optional[bool]:
        """Write a broadcast's frames with the writer role held, then release it (see :meth:`_write_now`)."""
        protocol, stream = self.protocol, self.stream
        failed = False
        try:
            stream.write(frames, 0.0)
        except WebSocketTimeout:
            pass  # the kernel took part of it: the rest is owed
        except OSError:
            failed = True
        finally:
            self.role.release()
        if failed:
            self._failed()
            return False
        if protocol.state is CLOSED:
            self._changed()  # the connection ended while we held the role: closing the descriptor is ours
            return False
        if self.deferred or protocol.has_pending:
            self.flush()  # queued by others while we held the role: nobody else could write it
        if stream.owed:
            self._changed()
            return None
        return True

    def _take_deferred(self) -> List[Any]:
        """The frames of the waiting broadcasts, encoded now (writer role held)."""
        out: List[Any] = []
        protocol = self.protocol
        with self._state_lock:
            entries, self.deferred = self.deferred, []
            for message, text, frames in entries:
                if protocol.state is not OPEN:
                    break
                out += frames if frames is not None else protocol.send_message(message, text=text)
        return out


def _acquire(lock: Any, deadline: Optional[float]) -> None:
    """Take ``lock``, waiting until ``deadline`` at most (:class:`WebSocketTimeout` then)."""
    if deadline is None:
        lock.acquire()
    elif not lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
        raise WebSocketTimeout("send() timed out waiting for another sender")
