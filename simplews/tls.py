"""TLS in memory: ``ssl.MemoryBIO`` + ``SSLContext.wrap_bio``, never an ``ssl.SSLSocket``.

A :class:`TLS` turns plaintext into ciphertext and back without touching a
socket, so the socket stays a plain socket that one thread reads and one
thread writes. It is not thread-safe by itself: its one user,
:class:`simplews.stream.Stream`, calls it under a lock held only for the
in-memory work (never while waiting on the network), so no two threads are
ever inside one SSL object at once (OpenSSL does not allow it).
"""

from __future__ import annotations

import ssl
from typing import Any, List, Optional, Tuple

from .exceptions import TLSError

__all__ = ["TLS"]

_READ = 256 * 1024


class TLS:
    """One side of a TLS session over a byte stream."""

    def __init__(self, context: ssl.SSLContext, *, server_side: bool, server_hostname: Optional[str] = None) -> None:
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._obj = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side, server_hostname=server_hostname)
        self._name = server_hostname or "the peer"
        #: the peer sent close_notify, or its stream ended
        self.eof = False

    def handshake(self, data: bytes) -> Tuple[bool, bytes]:
        """Feed handshake bytes from the peer; return whether it is done and the bytes to send."""
        if data:
            self._incoming.write(data)
        try:
            self._obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        except ssl.SSLCertVerificationError as exc:
            raise TLSError(f"TLS certificate verification failed for {self._name}: {exc.verify_message}") from exc
        except ssl.SSLError as exc:
            raise TLSError(f"TLS handshake with {self._name} failed: {exc.reason or exc}") from exc
        return done, self._outgoing.read()

    def encrypt(self, data: bytes) -> bytes:
        """The ciphertext carrying ``data``."""
        self._obj.write(data)
        return self._outgoing.read()

    def decrypt(self, data: Optional[bytes]) -> Tuple[bytes, bytes]:
        """Feed ciphertext from the peer; return the plaintext it completes and bytes to send back.

        Everything decryptable is returned: nothing is left inside the SSL object
        for a readiness check to miss (``data=None`` takes what the handshake's
        last read brought along). TLS 1.3 post-handshake messages (key updates)
        may produce bytes to send. At the peer's close_notify or the end of its
        stream (``data`` empty), ``eof`` is set.
        """
        out: List[bytes] = []
        if self.eof:
            return b"", b""
        if data:
            self._incoming.write(data)
        elif data is not None:
            self._incoming.write_eof()
        try:
            while True:
                chunk = self._obj.read(_READ)
                if not chunk:
                    self.eof = True
                    break
                out.append(chunk)
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self.eof = True  # close_notify, or a stream cut without one: both end the stream
        except ssl.SSLError as exc:
            raise TLSError(f"TLS error from {self._name}: {exc.reason or exc}") from exc
        return b"".join(out) if len(out) != 1 else out[0], self._outgoing.read()

    def close_notify(self) -> bytes:
        """The close_notify alert to send on a clean close (empty if it cannot be made)."""
        try:
            self._obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLError):
            pass  # we do not wait for the peer's own close_notify
        return self._outgoing.read()

    @property
    def version(self) -> Optional[str]:
        """The negotiated TLS version, e.g. ``"TLSv1.3"``."""
        return self._obj.version()

    def getpeercert(self, binary_form: bool = False) -> Any:
        """The peer's certificate, as ``ssl.SSLSocket.getpeercert()`` gives it."""
        return self._obj.getpeercert(binary_form)

    def cipher(self) -> Optional[Tuple[str, str, int]]:
        """The cipher in use: ``(name, protocol, secret bits)``."""
        return self._obj.cipher()
