"""Wire formats used by the fixed peers: WebSocket (RFC 6455) and raw TCP.

Both codecs expose the same small surface so that the fixed peers in
:mod:`benchmarks.peer` run the identical code for every library:

* ``frame(payload, text, masked)`` builds one complete frame (pre-built once
  per workload and then sent with ``sendall``);
* ``parse_header(view, pos, end)`` decodes one frame header in place;
* ``client_handshake`` / ``server_handshake`` do the opening handshake.

Raw TCP frames are a 4-byte big-endian length whose top bit flags text.
"""

from __future__ import annotations

import base64
import hashlib
import os
import socket
from typing import Any, Callable, Dict, List, Optional, Tuple

# (header length, payload length, opcode, fin, mask key or None)
Header = Tuple[int, int, int, bool, Optional[bytes]]
# (opcode, fin, payload or None when skipped)
Event = Tuple[int, bool, Optional[bytes]]

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA

MASK_KEY = b"\x37\xfa\x21\x3d"
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
MAX_HANDSHAKE = 16 * 1024
RAW_TEXT_FLAG = 0x8000_0000


def apply_mask(data: bytes, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` using one big-integer operation."""
    n = len(data)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    value = int.from_bytes(data, "little") ^ int.from_bytes(key, "little")
    return value.to_bytes(n, "little")


def read_http_head(sock: socket.socket) -> Tuple[bytes, bytes]:
    """Read up to the blank line ending an HTTP head; return (head, leftover)."""
    data = b""
    while b"\r\n\r\n" not in data:
        if len(data) > MAX_HANDSHAKE:
            raise ConnectionError("HTTP head too large")
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("connection closed during handshake")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def accept_key(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept value for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key + WS_GUID).digest())


def header_values(head: bytes, name: bytes) -> List[bytes]:
    """The values of every header line called ``name`` (case-insensitive) in an HTTP head."""
    values = []
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            values.append(value.strip())
    return values


def ws_client_upgrade(sock: socket.socket, port: int, extra: bytes = b"") -> Tuple[bytes, bytes]:
    """Send the upgrade request (``extra``: more header lines, each ending in CRLF),
    check the 101 answer; return (its head, leftover bytes)."""
    key = base64.b64encode(os.urandom(16))
    sock.sendall(
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
        b"Sec-WebSocket-Version: 13\r\n%s\r\n" % (port, key, extra)
    )
    head, rest = read_http_head(sock)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {head[:80]!r}")
    if accept_key(key) not in head:
        raise ConnectionError("bad Sec-WebSocket-Accept")
    return head, rest


def ws_server_upgrade(sock: socket.socket, answer: Callable[[bytes], bytes] = lambda head: b"") -> Tuple[bytes, bytes]:
    """Answer an upgrade request with 101 (plus the header lines ``answer(head)``
    returns); return (the request's head, leftover bytes)."""
    head, rest = read_http_head(sock)
    keys = header_values(head, b"sec-websocket-key")
    if not keys:
        raise ConnectionError("missing Sec-WebSocket-Key")
    sock.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n%s\r\n" % (accept_key(keys[0]), answer(head))
    )
    return head, rest


class WsCodec:
    """RFC 6455 framing and handshake, no extensions."""

    name = "ws"

    @staticmethod
    def frame(payload: bytes, text: bool, masked: bool, opcode: Optional[int] = None) -> bytes:
        """Build one FIN frame; client frames are masked with ``MASK_KEY``."""
        op = opcode if opcode is not None else (OP_TEXT if text else OP_BINARY)
        n = len(payload)
        mbit = 0x80 if masked else 0
        if n < 126:
            head = bytes((0x80 | op, mbit | n))
        elif n < 65536:
            head = bytes((0x80 | op, mbit | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | op, mbit | 127)) + n.to_bytes(8, "big")
        if masked:
            return head + MASK_KEY + apply_mask(payload, MASK_KEY)
        return head + payload

    @staticmethod
    def parse_header(view: memoryview, pos: int, end: int) -> Optional[Header]:
        """Decode the frame header at ``pos``; None if it is incomplete."""
        if end - pos < 2:
            return None
        b0 = view[pos]
        b1 = view[pos + 1]
        length = b1 & 0x7F
        hlen = 2 if length < 126 else (4 if length == 126 else 10)
        masked = b1 & 0x80
        if masked:
            hlen += 4
        if end - pos < hlen:
            return None
        if length == 126:
            length = (view[pos + 2] << 8) | view[pos + 3]
        elif length == 127:
            length = int.from_bytes(view[pos + 2:pos + 10], "big")
        mask = bytes(view[pos + hlen - 4:pos + hlen]) if masked else None
        return hlen, length, b0 & 0x0F, bool(b0 & 0x80), mask

    @staticmethod
    def close_frame(masked: bool) -> bytes:
        """A close frame with code 1000."""
        return WsCodec.frame(b"\x03\xe8", text=False, masked=masked, opcode=OP_CLOSE)

    @staticmethod
    def client_handshake(sock: socket.socket, port: int) -> bytes:
        """Send the upgrade request, check the 101 answer, return leftover bytes."""
        return ws_client_upgrade(sock, port)[1]

    @staticmethod
    def server_handshake(sock: socket.socket) -> bytes:
        """Answer an upgrade request with 101, return leftover bytes."""
        return ws_server_upgrade(sock)[1]


class RawCodec:
    """Length-prefixed messages: 4-byte big-endian length, top bit = text."""

    name = "raw"

    @staticmethod
    def frame(payload: bytes, text: bool, masked: bool, opcode: Optional[int] = None) -> bytes:
        """Build one message; ``masked`` is ignored (raw TCP has no masking)."""
        flag = RAW_TEXT_FLAG if text else 0
        return (len(payload) | flag).to_bytes(4, "big") + payload

    @staticmethod
    def parse_header(view: memoryview, pos: int, end: int) -> Optional[Header]:
        """Decode the 4-byte header at ``pos``; None if it is incomplete."""
        if end - pos < 4:
            return None
        value = int.from_bytes(view[pos:pos + 4], "big")
        opcode = OP_TEXT if value & RAW_TEXT_FLAG else OP_BINARY
        return 4, value & ~RAW_TEXT_FLAG, opcode, True, None

    @staticmethod
    def close_frame(masked: bool) -> bytes:
        """Raw TCP closes by closing the socket: nothing to send."""
        return b""

    @staticmethod
    def client_handshake(sock: socket.socket, port: int) -> bytes:
        """No handshake in raw TCP."""
        return b""

    @staticmethod
    def server_handshake(sock: socket.socket) -> bytes:
        """No handshake in raw TCP."""
        return b""


CODECS: Dict[str, Any] = {"ws": WsCodec, "raw": RawCodec}


class Scanner:
    """Incremental frame scanner for the fixed peers.

    ``feed(data)`` returns ``(opcode, fin, payload)`` for every frame header
    completed by ``data``.  Binary and continuation payloads are skipped
    without copying (``payload`` is None): the fixed peers only count them.
    Text and control payloads are returned unmasked.
    """

    def __init__(self, codec: Any) -> None:
        self._parse = codec.parse_header
        self._skip = 0
        self._pending = b""

    def feed(self, data: memoryview) -> List[Event]:
        """Consume ``data``; return the events it completes."""
        view = memoryview(data)
        if self._skip:
            k = min(self._skip, len(view))
            self._skip -= k
            view = view[k:]
        if self._pending:
            view = memoryview(self._pending + bytes(view))
            self._pending = b""
        events: List[Event] = []
        pos, end = 0, len(view)
        parse = self._parse
        while pos < end:
            header = parse(view, pos, end)
            if header is None:
                break
            hlen, length, opcode, fin, mask = header
            start = pos + hlen
            if opcode == OP_BINARY or opcode == OP_CONT:
                events.append((opcode, fin, None))
                if length > end - start:
                    self._skip = length - (end - start)
                    pos = end
                    break
                pos = start + length
                continue
            if length > end - start:
                break
            payload = bytes(view[start:start + length])
            if mask is not None:
                payload = apply_mask(payload, mask)
            events.append((opcode, fin, payload))
            pos = start + length
        if pos < end:
            self._pending = bytes(view[pos:])
        return events
