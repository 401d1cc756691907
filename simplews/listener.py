"""The accept thread of a server, and who gets in.

One thread and one :mod:`selectors` selector per server accept connections
while admission allows: beyond ``max_connections`` a client is refused with
``503`` (no thread is started for it); while too many handshakes are in
progress the listening socket is left alone, so new clients wait in the
kernel's backlog instead of each holding a thread; when the process runs out of
file descriptors, accepting backs off (10 ms doubling to 1 s) instead of spinning.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import threading
import time
from typing import Any, Callable, Dict, Optional

from . import handshake
from .transport import discard

__all__ = ["Listener", "DEFAULT_MAX_PENDING_HANDSHAKES"]

_default_logger = logging.getLogger("simplews")

#: Connections still in their opening handshake (TCP accepted, no 101 yet), each holding a thread.
DEFAULT_MAX_PENDING_HANDSHAKES = 128
#: How long a client refused with 503 may take to read the answer before it is closed.
_LINGER_TIME = 2.0
_MAX_LINGERING = 256
_BACKOFF_FIRST, _BACKOFF_MAX = 0.01, 1.0
#: accept() failures that mean "out of resources for now", not "the listener is broken"
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Listener:
    """Accepts on ``sock`` in a thread of its own and hands each connection to ``spawn``.

    ``full()`` says whether ``max_connections`` is reached (the client then gets
    a 503, or over TLS is just closed); ``saturated()`` whether to stop accepting
    for now. Call :meth:`wake` when the answer of ``saturated()`` may have changed.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        spawn: Callable[[socket.socket, Any], None],
        full: Callable[[], bool],
        saturated: Callable[[], bool],
        tls: bool,
        server_header: Optional[str] = None,
        logger: Any = None,
    ) -> None:
        self.sock = sock
        self._server_header = server_header
        self._logger = logger or _default_logger
        self._spawn = spawn
        self._full = full
        self._saturated = saturated
        self._tls = tls
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._lingering: Dict[socket.socket, float] = {}
        self._stopping = False
        self._thread: Optional[threading.Thread] = None
        self._backoff = 0.0
        self._resume_at = 0.0

    def start(self) -> None:
        """Start the accept thread."""
        self.sock.setblocking(False)
        self._thread = threading.Thread(target=self._run, name="simplews-accept", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Make the accept thread look at admission again (safe from any thread)."""
        try:
            self._wake_w.send(b"x")
        except OSError:  # closed by stop(), or the pipe is full: it is awake anyway
            pass

    def stop(self) -> None:
        """Stop accepting, wait for the thread and close the listening socket."""
        self._stopping = True
        self.wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        for sock in (self.sock, self._wake_r, self._wake_w):
            try:
                sock.close()
            except OSError:
                pass

    def _run(self) -> None:
        """The accept thread's loop."""
        selector = self._selector
        selector.register(self._wake_r, selectors.EVENT_READ)
        accepting = False
        try:
            while not self._stopping:
                now = time.monotonic()
                want = now >= self._resume_at and not self._saturated()
                if want != accepting:
                    if want:
                        selector.register(self.sock, selectors.EVENT_READ)
                    else:
                        selector.unregister(self.sock)
                    accepting = want
                for key, _ in selector.select(self._next_wait(now, accepting)):
                    sock = key.fileobj
                    if sock is self._wake_r:
                        self._drain_wake()
                    elif sock is self.sock:
                        self._accept_one()
                    else:
                        self._drain_lingering(sock)  # type: ignore[arg-type]
                self._expire_lingering()
        finally:
            for sock in list(self._lingering):
                discard(sock)
            self._lingering.clear()
            selector.close()

    def _next_wait(self, now: float, accepting: bool) -> Optional[float]:
        """Seconds until something is due: a lingering client's expiry or the end of a back-off."""
        due = [deadline for deadline in self._lingering.values()]
        if not accepting and self._resume_at > now:
            due.append(self._resume_at)
        return max(0.0, min(due) - now) if due else None

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _accept_one(self) -> None:
        """Accept one connection and admit it, refuse it, or back off."""
        try:
            client, addr = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            if self._stopping:
                return
            if exc.errno not in _RESOURCE_ERRORS:
                self._logger.warning("accept failed: %s", exc)
            self._back_off(exc)
            return
        if self._backoff:
            self._logger.info("accepting again")
            self._backoff = 0.0
        client.setblocking(True)
        self._logger.debug("accepted %s", addr)
        if self._full():
            self._refuse(client)
        else:
            self._spawn(client, addr)

    def _back_off(self, exc: OSError) -> None:
        """Stop accepting for a while after a failed accept (e.g. out of file descriptors)."""
        first = not self._backoff
        self._backoff = _BACKOFF_FIRST if first else min(self._backoff * 2, _BACKOFF_MAX)
        self._resume_at = time.monotonic() + self._backoff
        (self._logger.warning if first else self._logger.debug)("accept failed: %s; retrying in %.2f s", exc, self._backoff)

    def _refuse(self, client: socket.socket) -> None:
        """Answer 503 without a thread (too many connections); over TLS, just close.

        The socket then lingers, watched by this thread, until the client closes
        or ``_LINGER_TIME`` passes: closing at once with the client's request
        unread would send a reset that can destroy the 503 in flight.
        """
        self._logger.info("refusing a connection: max_connections reached")
        if self._tls:  # a TLS client cannot read a plain-text 503
            discard(client)
            return
        try:
            client.setblocking(False)
            headers = [("Retry-After", "1")] + ([("Server", self._server_header)] if self._server_header else [])
            client.send(handshake.build_response(503, headers, b"server busy\n"))
            client.shutdown(socket.SHUT_WR)
        except OSError:
            discard(client)
            return
        if len(self._lingering) >= _MAX_LINGERING:
            self._close_lingering(min(self._lingering, key=self._lingering.__getitem__))
        self._lingering[client] = time.monotonic() + _LINGER_TIME
        self._selector.register(client, selectors.EVENT_READ)

    def _drain_lingering(self, sock: socket.socket) -> None:
        """Discard what a refused client sent; close once it closes."""
        try:
            if sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._close_lingering(sock)

    def _expire_lingering(self) -> None:
        """Close refused clients that had their time to read the 503."""
        now = time.monotonic()
        for sock in [s for s, deadline in self._lingering.items() if deadline <= now]:
            self._close_lingering(sock)

    def _close_lingering(self, sock: socket.socket) -> None:
        """Forget and close one refused client."""
        del self._lingering[sock]
        self._selector.unregister(sock)
        discard(sock)
