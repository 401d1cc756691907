"""Hand-made peers over raw sockets, for fault injection and hostile clients.

They speak just enough of RFC 6455 to reach the state a test needs (a finished
handshake, half a frame, a frame with a forged length) and then misbehave.
"""

from __future__ import annotations

import base64
import collections
import os
import socket
import struct
import threading
from typing import Any, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

import simplews
from simplews.frames import apply_mask, encode_header
from simplews.handshake import accept_key, find_head_end
from simplews.protocol import Close, Message, Protocol

KEY = base64.b64encode(b"0123456789abcdef").decode()


def address(url: str) -> Tuple[str, int]:
    """``(host, port)`` of a ``ws://`` URL."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def upgrade_request(host: str = "127.0.0.1", path: str = "/") -> bytes:
    """A minimal valid client upgrade request."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


def read_head(sock: socket.socket, limit: int = 65536) -> Tuple[bytes, bytes]:
    """Read an HTTP head; return it and what followed it."""
    buf = b""
    while True:
        end = find_head_end(buf, None)
        if end >= 0:
            return buf[:end], buf[end:]
        chunk = sock.recv(4096)
        if not chunk or len(buf) > limit:
            raise ConnectionError(f"no HTTP head: {buf[:200]!r}")
        buf += chunk


def raw_client(url: str, *, timeout: float = 10.0, path: str = "/", rcvbuf: Optional[int] = None) -> Tuple[socket.socket, bytes]:
    """Connect and finish the opening handshake by hand; return the socket and leftover bytes.

    ``rcvbuf`` is set before connecting, so that the TCP window the peer sees is small from the start.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(timeout)
    sock.connect(address(url))
    sock.sendall(upgrade_request(path=path))
    head, leftover = read_head(sock)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock, leftover


def client_frame(opcode: int, payload: bytes, *, fin: bool = True, length: Optional[int] = None) -> bytes:
    """A masked frame as a client sends it; ``length`` forges the header's length field."""
    key = os.urandom(4)
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | opcode
    if n < 126:
        head = struct.pack("!BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", b0, 0x80 | 127, n)
    return head + key + apply_mask(payload, key)


def server_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """An unmasked frame as a server sends it."""
    return encode_header(opcode, len(payload), fin=fin) + payload


def close_payload(code: int, reason: str = "") -> bytes:
    """The payload of a close frame."""
    return code.to_bytes(2, "big") + reason.encode()


def read_until_close(sock: socket.socket, leftover: bytes = b"", *, is_client: bool = True) -> Tuple[List[Message], Optional[Close]]:
    """Read and parse what the peer sends until its close frame or end of stream."""
    parser = Protocol(is_client, max_message_size=None)
    messages: List[Message] = []
    data = leftover
    while True:
        for event in parser.receive_data(data) if data else []:
            if isinstance(event, Message):
                messages.append(event)
            elif isinstance(event, Close):
                return messages, event
        try:
            data = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            return messages, None
        if not data:
            return messages, None


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer gets a TCP RST instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class RawServer:
    """A listening socket whose connections are upgraded by hand, then misbehave."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.socks: List[socket.socket] = []
        #: the Sec-WebSocket-Key of every request answered
        self.keys: List[str] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The ``ws://`` URL of the listener."""
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"

    def accept(self, *, rcvbuf: Optional[int] = None) -> Tuple[socket.socket, bytes]:
        """Accept one connection and answer its upgrade; return the socket and leftover bytes."""
        sock, _ = self.listener.accept()
        with self._lock:
            self.socks.append(sock)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        head, leftover = read_head(sock)
        key = next(
            line.split(b":", 1)[1].strip().decode()
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"sec-websocket-key:")
        )
        self.keys.append(key)
        sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + f"Sec-WebSocket-Accept: {accept_key(key)}\r\n\r\n".encode()
        )
        return sock, leftover

    def accept_in_thread(self, **kwargs: object) -> Accepted:
        """Accept one connection on a helper thread (while the client connects on this one)."""
        return Accepted(self, kwargs)

    def close(self) -> None:
        """Close the listener and every accepted socket."""
        self.listener.close()
        with self._lock:
            for sock in self.socks:
                sock.close()

    def __enter__(self) -> RawServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Accepted:
    """The result of :meth:`RawServer.accept_in_thread`."""

    def __init__(self, server: RawServer, kwargs: dict) -> None:
        self.sock: Optional[socket.socket] = None
        self.leftover = b""
        self.error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, args=(server, kwargs), name="test-raw-accept")
        self._thread.start()

    def _run(self, server: RawServer, kwargs: dict) -> None:
        try:
            self.sock, self.leftover = server.accept(**kwargs)  # type: ignore[arg-type]
        except BaseException as exc:  # reported by result()
            self.error = exc

    def result(self, timeout: float = 10.0) -> Tuple[socket.socket, bytes]:
        """Wait for the accepted socket."""
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.sock is not None, "nobody connected"
        return self.sock, self.leftover


def fd_count() -> int:
    """Open file descriptors of this process."""
    return len(os.listdir("/proc/self/fd"))


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Observed:
    """Callbacks of the side under test in the property tests: what each connection (by request path) saw.

    A text message starting with :data:`CLOSE_NOW` makes it close with the code
    that follows it; every other message is echoed.
    """

    CLOSE_NOW = "\x00close "

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: Dict[str, List[Any]] = collections.defaultdict(list)
        self.closes: Dict[str, List[Tuple[int, str]]] = collections.defaultdict(list)

    def on_message(self, ws: simplews.Connection, message: Any) -> None:
        with self.lock:
            self.messages[ws.path].append(message)
        if isinstance(message, str) and message.startswith(self.CLOSE_NOW):
            ws.close(int(message[len(self.CLOSE_NOW) :]), "bye")
        else:
            ws.send(message)

    def on_close(self, ws: simplews.Connection, code: int, reason: str) -> None:
        with self.lock:
            self.closes[ws.path].append((code, reason))


#: the limits of both sides in the property tests: small, so that hitting them is cheap
PROPERTY_MAX_SIZE = 64 * 1024
PROPERTY_MAX_FRAGMENTS = 64
