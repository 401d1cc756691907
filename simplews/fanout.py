"""Writing to many connections at once without waiting on any one of them.

:meth:`Server.broadcast` and :meth:`Server.shutdown` both have to put bytes on
many sockets where one peer may be slow or dead. :func:`fan_out` does it from
the calling thread alone, like a tiny event loop: it takes each connection's
write lock without blocking, writes what the kernel accepts at once
(``MSG_DONTWAIT``), then polls the sockets that still owe bytes for
writability until a common deadline. So a stalled peer costs the others
nothing, and the whole call lasts at most ``timeout`` however many peers stall.

A connection keeps its write lock while its buffer is in flight, so no other
frame can follow half a frame. A peer still owing bytes at the deadline is
handed to ``on_stall`` (broadcast aborts it: see :func:`abort_slow`).

TLS: ``SSL_write`` on a blocking socket ignores ``SO_SNDTIMEO`` (CPython
retries forever), so TLS buffers are written in small records, each only when
``poll`` reports room in the kernel buffer.
"""

from __future__ import annotations

import logging
import select
import socket
import time
from typing import Any, Callable, Dict, Iterable, List, Optional

from .connection import TLS_RECORD_SIZE, Connection
from .exceptions import ConnectionClosed, WebSocketError

__all__ = ["fan_out", "abort_slow", "DEFAULT_BROADCAST_TIMEOUT"]

logger = logging.getLogger("simplews")

#: How long :meth:`Server.broadcast` waits, in total, for slow peers to take a message.
DEFAULT_BROADCAST_TIMEOUT = 2.0
_WAIT_SLICE = 0.01  # how often write locks held by other threads are retried

Prepare = Callable[[Connection], Optional[bytes]]
OnStall = Callable[[Connection, bool], None]


class _Out:
    """A connection whose buffer is being written (its write lock is held)."""

    __slots__ = ("conn", "fd", "view", "sent")

    def __init__(self, conn: Connection, fd: int, data: bytes) -> None:
        self.conn = conn
        self.fd = fd
        self.view = memoryview(data)
        self.sent = 0


def _write_some(conn: Connection, view: memoryview) -> int:
    """Write what the kernel takes now, without blocking; return how many bytes went."""
    sock = conn.sock
    if not conn._is_tls:
        try:
            return sock.send(view, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return 0
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLOUT)
    total = 0
    while total < len(view) and poller.poll(0):
        total += sock.send(view[total : total + TLS_RECORD_SIZE])
    return total


def _advance(out: _Out) -> Optional[bool]:
    """Write more of ``out``: ``True`` when done, ``False`` if more is owed, ``None`` on failure."""
    conn = out.conn
    try:
        while True:
            if out.sent < len(out.view):
                out.sent += _write_some(conn, out.view[out.sent :])
                if out.sent < len(out.view):
                    return False
            # frames the reader queued meanwhile (pongs, a close reply) go next, under the same lock
            with conn._state_lock:
                if not conn.protocol.has_pending:
                    return True
                pending = b"".join(bytes(b) for b in conn.protocol.data_to_send())
            out.view, out.sent = memoryview(pending), 0
    except OSError as exc:
        logger.debug("%r: write failed: %s", conn, exc)
        conn._terminate()
        return None


def fan_out(conns: Iterable[Connection], prepare: Prepare, deadline: float, on_stall: OnStall) -> List[Connection]:
    """Write ``prepare(conn)`` to every connection without blocking on any one.

    ``prepare`` runs with the connection's write lock held and returns the
    bytes to write (``None`` to skip). Returns the connections that took all
    of their bytes. A connection still owing bytes at ``deadline`` goes to
    ``on_stall(conn, partial)``; one whose lock stays busy (another thread is
    writing to it) until ``deadline`` is skipped.
    """
    delivered: List[Connection] = []
    waiting = list(conns)
    flying: Dict[int, _Out] = {}
    poller = select.poll()

    def finish(out: _Out, result: Optional[bool]) -> None:
        if result is False:
            if out.fd not in flying:
                flying[out.fd] = out
                poller.register(out.fd, select.POLLOUT)
            return
        if out.fd in flying:
            del flying[out.fd]
            poller.unregister(out.fd)
        out.conn._write_lock.release()
        if result:
            delivered.append(out.conn)

    while True:
        busy = []
        for conn in waiting:
            if not conn._write_lock.acquire(blocking=False):
                busy.append(conn)
                continue
            try:
                data = prepare(conn)
            except (ConnectionClosed, WebSocketError, OSError):
                data = None
            except BaseException:
                conn._write_lock.release()
                raise
            if data is None:
                conn._write_lock.release()
                continue
            sent = 0
            if not conn._is_tls:  # common case: the kernel takes it all at once
                try:
                    sent = conn.sock.send(data, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError as exc:
                    logger.debug("%r: write failed: %s", conn, exc)
                    conn._terminate()
                    conn._write_lock.release()
                    continue
                if sent == len(data) and not conn.protocol.has_pending:
                    conn._write_lock.release()
                    delivered.append(conn)
                    continue
            out = _Out(conn, conn.sock.fileno(), data)
            out.sent = sent
            finish(out, _advance(out))
        waiting = busy
        left = deadline - time.monotonic()
        if not (waiting or flying) or left <= 0:
            break
        if flying:
            wait = min(left, _WAIT_SLICE) if waiting else left
            for fd, _ in poller.poll(max(1, int(wait * 1000))):
                ready = flying.get(fd)
                if ready is not None:
                    finish(ready, _advance(ready))
        else:
            time.sleep(min(left, _WAIT_SLICE))
    for out in list(flying.values()):
        poller.unregister(out.fd)
        try:
            on_stall(out.conn, out.sent > 0)
        finally:
            out.conn._write_lock.release()
    for conn in waiting:
        logger.debug("%r: skipped: another thread kept writing to it", conn)
    return delivered


def abort_slow(conn: Connection, partial: bool) -> None:
    """Close a peer too slow to take a broadcast: close code 1008, transport aborted.

    Called with the write lock held. Its close frame is written only if nothing
    of the message went out (after half a frame, another frame would corrupt
    the stream) and only if the kernel takes it at once.
    """
    logger.info("%r: too slow to receive a broadcast; closing with 1008", conn)
    with conn._state_lock:
        conn.protocol.fail(1008, "too slow to receive")
        frame = b"".join(bytes(b) for b in conn.protocol.data_to_send())
    if frame and not partial:
        try:
            _write_some(conn, memoryview(frame))
        except OSError:
            pass
    conn._terminate()


def encode_for_all(message: Any, frame_size: Optional[int]) -> bytes:
    """Encode ``message`` once as the server frames that every uncompressed connection sends."""
    from .protocol import Protocol

    return b"".join(bytes(b) for b in Protocol(False, frame_size=frame_size).send_message(message))
