"""Blocking socket helpers shared by the client and the server: TCP, TLS, HTTP heads."""

from __future__ import annotations

import errno
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Set, Tuple, Type

from .exceptions import (
    ConnectError,
    ConnectionRefused,
    HostNotFound,
    InvalidHandshake,
    OpenTimeout,
    TLSError,
)
from .handshake import find_head_end

if TYPE_CHECKING:  # pragma: no cover
    import ssl  # imported on first TLS use: it costs milliseconds of import time

__all__ = [
    "Cancel",
    "shutdown",
    "discard",
    "open_tcp",
    "wrap_tls",
    "default_ssl_context",
    "is_tls_socket",
    "tls_timeout_errors",
    "read_head",
    "remaining",
]


class Cancel:
    """Lets another thread abort the blocking socket calls of a connection being opened.

    Sockets are tracked while they open; :meth:`cancel` shuts them down, which
    wakes a blocked ``connect``, ``recv`` or TLS handshake at once (closing the
    descriptor from another thread would not, and could hit a reused one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: Set[socket.socket] = set()
        self.cancelled = False

    def track(self, sock: socket.socket) -> None:
        """Watch ``sock``; raise :class:`ConnectError` if the attempt is already cancelled."""
        with self._lock:
            if self.cancelled:
                raise ConnectError("connection attempt cancelled")
            self._socks.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        """Stop watching ``sock``."""
        with self._lock:
            self._socks.discard(sock)

    def cancel(self) -> None:
        """Abort every tracked socket and any tracked later."""
        with self._lock:
            self.cancelled = True
            socks = list(self._socks)
        for sock in socks:
            shutdown(sock)


def shutdown(sock: socket.socket) -> None:
    """Shut a socket down in both directions (waking any thread blocked on it), ignoring errors."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def discard(sock: socket.socket) -> None:
    """Shut a socket down and close it, ignoring errors."""
    shutdown(sock)
    try:
        sock.close()
    except OSError:
        pass


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left before ``deadline``; raise :class:`OpenTimeout` if none are."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise OpenTimeout("timed out while opening the connection")
    return left


def open_tcp(host: str, port: int, deadline: Optional[float], cancel: Optional[Cancel] = None) -> socket.socket:
    """Connect a TCP socket to ``host:port``, trying every address, with clear errors."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostNotFound(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    except UnicodeError as exc:  # the IDNA codec refuses the name (e.g. a label over 63 characters)
        raise HostNotFound(f"cannot resolve host {host!r}: invalid host name ({exc})") from exc
    last: Optional[OSError] = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            if cancel is not None:
                cancel.track(sock)
            sock.settimeout(remaining(deadline))
            sock.connect(addr)
        except socket.timeout as exc:
            sock.close()
            raise OpenTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    if isinstance(last, ConnectionRefusedError) or getattr(last, "errno", None) == errno.ECONNREFUSED:
        raise ConnectionRefused(f"connection refused by {host}:{port}") from last
    raise ConnectError(f"cannot connect to {host}:{port}: {last}") from last


def default_ssl_context() -> ssl.SSLContext:
    """A client TLS context verifying certificates and host names with certifi's CA bundle."""
    import ssl

    import certifi  # deferred: keeps ``import simplews`` fast

    return ssl.create_default_context(cafile=certifi.where())


def is_tls_socket(sock: Any) -> bool:
    """Whether ``sock`` is an :class:`ssl.SSLSocket`, without importing :mod:`ssl`.

    No TLS socket can exist before something imported :mod:`ssl`, so a plain
    TCP connection never pays for that import.
    """
    ssl = sys.modules.get("ssl")
    return ssl is not None and isinstance(sock, ssl.SSLSocket)


def tls_timeout_errors() -> Tuple[Type[BaseException], ...]:
    """The exceptions meaning "would block / timed out" on a TLS socket (imports :mod:`ssl`)."""
    import ssl

    return (BlockingIOError, socket.timeout, ssl.SSLWantReadError, ssl.SSLWantWriteError)


def wrap_tls(
    sock: socket.socket,
    context: ssl.SSLContext,
    server_hostname: str,
    deadline: Optional[float],
    cancel: Optional[Cancel] = None,
) -> ssl.SSLSocket:
    """Run the client TLS handshake on ``sock`` (SNI set) with clear errors."""
    import ssl

    try:
        sock.settimeout(remaining(deadline))
        tls = context.wrap_socket(sock, server_hostname=server_hostname, do_handshake_on_connect=False)
        sock = tls
        if cancel is not None:
            cancel.track(tls)  # the plain socket object is detached now
        tls.do_handshake()
        return tls
    except ssl.SSLCertVerificationError as exc:
        sock.close()
        raise TLSError(f"TLS certificate verification failed for {server_hostname}: {exc.verify_message}") from exc
    except ssl.SSLError as exc:
        sock.close()
        raise TLSError(f"TLS handshake with {server_hostname} failed: {exc.reason or exc}") from exc
    except socket.timeout as exc:
        sock.close()
        raise OpenTimeout(f"timed out in the TLS handshake with {server_hostname}") from exc
    except OSError as exc:
        sock.close()
        raise TLSError(f"TLS handshake with {server_hostname} failed: {exc}") from exc


def read_head(sock: socket.socket, max_size: Optional[int], deadline: Optional[float]) -> Tuple[bytes, bytes]:
    """Read an HTTP head (through the blank line); return it and any bytes after it.

    Raises :class:`InvalidHandshake` if the peer closes first or the head is
    larger than ``max_size``, and :class:`OpenTimeout` at ``deadline``.
    """
    buf = bytearray()
    while True:
        sock.settimeout(remaining(deadline))
        try:
            chunk = sock.recv(4096)
        except socket.timeout as exc:
            raise OpenTimeout("timed out waiting for the HTTP handshake") from exc
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
