"""A raw-socket WebSocket peer for conformance tests: hand-made handshakes and frames.

Nothing here uses simplews: frames are built and parsed byte by byte, so the
tests check simplews against an independent reading of RFC 6455.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import select
import socket
import struct
import time
from typing import List, Optional, Tuple, Union

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TIMEOUT = 10.0

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_for(key: Union[str, bytes]) -> str:
    """Sec-WebSocket-Accept for ``key`` (RFC 6455 section 4.2.2)."""
    raw = key.encode("ascii") if isinstance(key, str) else key
    return base64.b64encode(hashlib.sha1(raw + GUID).digest()).decode("ascii")


def mask_bytes(data: bytes, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``key``."""
    if not data:
        return b""
    n = len(data)
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(k, "big")).to_bytes(n, "big")


def build_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool,
    key: Optional[bytes] = None,
    length: Optional[int] = None,
) -> bytes:
    """Encode one frame; ``rsv`` is the 3-bit RSV1..RSV3 field, ``length`` overrides the declared length."""
    declared = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (opcode & 0x0F)
    m = 0x80 if mask else 0
    if declared < 126:
        head = struct.pack("!BB", b0, m | declared)
    elif declared < 65536:
        head = struct.pack("!BBH", b0, m | 126, declared)
    else:
        head = struct.pack("!BBQ", b0, m | 127, declared)
    if not mask:
        return head + payload
    key = os.urandom(4) if key is None else key
    return head + key + mask_bytes(payload, key)


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """A close frame payload: 2-byte code and raw reason bytes."""
    return struct.pack("!H", code) + reason


@dataclasses.dataclass
class RawFrame:
    """One frame as received, payload unmasked."""

    opcode: int
    payload: bytes
    fin: bool
    rsv: int
    masked: bool
    key: Optional[bytes]

    @property
    def close_code(self) -> Optional[int]:
        """The close code of a close frame (``None`` if the payload is empty)."""
        assert self.opcode == CLOSE, self
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None


class RawPeer:
    """One end of a WebSocket connection driven by hand.

    ``is_client`` says which role this raw peer plays: a raw client masks what
    it sends and requires unmasked frames, a raw server the reverse.
    """

    def __init__(self, sock: socket.socket, *, is_client: bool, leftover: bytes = b"") -> None:
        self.sock = sock
        self.is_client = is_client
        self.buf = bytearray(leftover)
        self.eof = False
        #: masking keys of every frame received (raw server role)
        self.keys: List[bytes] = []
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # --- sending --------------------------------------------------------------------------

    def frame(self, opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0,
              mask: Optional[bool] = None, length: Optional[int] = None) -> bytes:
        """Encode a frame masked as this role should (unless ``mask`` says otherwise)."""
        return build_frame(opcode, payload, fin=fin, rsv=rsv, mask=self.is_client if mask is None else mask, length=length)

    def send(self, opcode: int, payload: bytes = b"", **kwargs: object) -> None:
        """Send one frame in one write."""
        self.sock.sendall(self.frame(opcode, payload, **kwargs))  # type: ignore[arg-type]

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are."""
        self.sock.sendall(data)

    def send_close(self, code: Optional[int] = 1000, reason: bytes = b"") -> None:
        """Send a close frame (empty payload when ``code`` is None); ignore a closed socket."""
        try:
            self.send(CLOSE, b"" if code is None else close_payload(code, reason))
        except OSError:
            pass

    # --- receiving ------------------------------------------------------------------------

    def _fill(self, deadline: float) -> bool:
        """Read more bytes; ``False`` at end of stream (FIN or reset)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out waiting for data (buffered {bytes(self.buf[:32])!r})")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(1 << 20)
        except socket.timeout:
            raise AssertionError(f"timed out waiting for data (buffered {bytes(self.buf[:32])!r})") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _parse(self) -> Optional[RawFrame]:
        """Take one whole frame from the buffer, or ``None`` if incomplete."""
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        length, pos = b1 & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos : pos + 4])
            pos += 4
        if len(buf) < pos + length:
            return None
        payload = bytes(buf[pos : pos + length])
        del buf[: pos + length]
        if key is not None:
            payload = mask_bytes(payload, key)
        return RawFrame(b0 & 0x0F, payload, bool(b0 & 0x80), (b0 >> 4) & 7, masked, key)

    def read_frame(self, timeout: float = TIMEOUT) -> Optional[RawFrame]:
        """The next frame, or ``None`` at end of stream; checks the sender's masking duty."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self._parse()
            if frame is not None:
                # RFC 6455 5.1: clients mask every frame, servers none
                assert frame.masked == (not self.is_client), f"masking rule broken by the simplews peer: {frame}"
                assert frame.rsv == 0, f"simplews set RSV bits without an extension: {frame}"
                if frame.key is not None:
                    self.keys.append(frame.key)
                return frame
            if self.eof or not self._fill(deadline):
                assert not self.buf, f"stream ended inside a frame: {bytes(self.buf[:32])!r}"
                return None

    def read_message(self, timeout: float = TIMEOUT) -> Tuple[int, bytes]:
        """The next data message (fragments joined) as ``(opcode, payload)``; no control frame may come first."""
        first = self.read_frame(timeout)
        assert first is not None and first.opcode in (TEXT, BINARY), f"expected a data frame, got {first}"
        parts = [first.payload]
        frame = first
        while not frame.fin:
            nxt = self.read_frame(timeout)
            assert nxt is not None and nxt.opcode == CONT, f"expected a continuation frame, got {nxt}"
            parts.append(nxt.payload)
            frame = nxt
        return first.opcode, b"".join(parts)

    def expect_message(self, opcode: int, payload: bytes, timeout: float = TIMEOUT) -> None:
        """Assert the next message is exactly ``payload`` with ``opcode``."""
        got_op, got = self.read_message(timeout)
        assert got_op == opcode, f"opcode {got_op}, expected {opcode}"
        assert got == payload, f"payload differs: {len(got)} bytes {got[:40]!r} vs {len(payload)} bytes {payload[:40]!r}"

    def expect_frame(self, opcode: int, payload: bytes, timeout: float = TIMEOUT) -> None:
        """Assert the next frame is a single final frame ``opcode`` with ``payload``."""
        frame = self.read_frame(timeout)
        assert frame is not None, f"connection ended; expected opcode {opcode}"
        assert (frame.opcode, frame.payload, frame.fin) == (opcode, payload, True), frame

    def expect_close_frame(self, code: Optional[int], reason: Optional[bytes] = None, timeout: float = TIMEOUT) -> RawFrame:
        """Assert the next frame is a close with ``code`` (``None``: empty payload)."""
        frame = self.read_frame(timeout)
        assert frame is not None, f"TCP closed without a close frame; expected close {code}"
        assert frame.opcode == CLOSE, f"expected close {code}, got {frame}"
        assert frame.close_code == code, f"close code {frame.close_code} ({frame.payload[2:]!r}), expected {code}"
        if code is None:
            assert frame.payload == b""
        if reason is not None:
            assert frame.payload[2:] == reason
        if len(frame.payload) > 2:
            frame.payload[2:].decode("utf-8")  # a close reason is UTF-8 (RFC 6455 5.5.1)
        return frame

    def wait_eof(self, timeout: float = TIMEOUT) -> None:
        """Assert the peer closes TCP (after at most stray bytes that are not frames we expect)."""
        deadline = time.monotonic() + timeout
        while not self.eof:
            self._fill(deadline)
        assert not self.buf, f"data after the close frame: {bytes(self.buf[:32])!r}"

    def peer_still_open(self) -> bool:
        """Whether the peer has not closed TCP yet (checked without waiting)."""
        if self.eof:
            return False
        readable, _, _ = select.select([self.sock], [], [], 0)
        if not readable:
            return True
        try:
            data = self.sock.recv(1 << 16, socket.MSG_PEEK)
        except ConnectionResetError:
            return False
        return bool(data)

    def close(self) -> None:
        """Close our socket."""
        try:
            self.sock.close()
        except OSError:
            pass


# --- hand-made handshakes ------------------------------------------------------------------


def read_http_head(sock: socket.socket, timeout: float = TIMEOUT) -> Tuple[bytes, bytes]:
    """Read an HTTP head through the blank line; return it and any bytes after."""
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed during the HTTP head: {buf[:200]!r}")
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


def parse_head(head: bytes) -> Tuple[str, List[Tuple[str, str]]]:
    """Split an HTTP head into its start line and ``(lowercase name, value)`` headers."""
    lines = head.decode("latin-1").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    return lines[0], headers


def header(headers: List[Tuple[str, str]], name: str) -> Optional[str]:
    """The first value of header ``name`` (case-insensitive)."""
    for key, value in headers:
        if key == name.lower():
            return value
    return None


def request_bytes(port: int, *, key: Optional[str] = None, method: str = "GET", version: str = "13",
                  upgrade: Optional[str] = "websocket", connection: Optional[str] = "Upgrade",
                  extra: str = "", omit: Tuple[str, ...] = ()) -> Tuple[bytes, str]:
    """A client upgrade request written by hand; returns it and the key used."""
    key = base64.b64encode(os.urandom(16)).decode("ascii") if key is None else key
    lines = [f"{method} / HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    if upgrade is not None:
        lines.append(f"Upgrade: {upgrade}")
    if connection is not None:
        lines.append(f"Connection: {connection}")
    if "key" not in omit:
        lines.append(f"Sec-WebSocket-Key: {key}")
    if "version" not in omit:
        lines.append(f"Sec-WebSocket-Version: {version}")
    text = "\r\n".join(lines) + "\r\n" + extra + "\r\n"
    return text.encode("latin-1"), key


def http_exchange(port: int, request: bytes, timeout: float = TIMEOUT) -> Tuple[int, List[Tuple[str, str]], socket.socket]:
    """Send a raw request; return the status, headers and the still-open socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    head, _ = read_http_head(sock, timeout)
    start, headers = parse_head(head)
    return int(start.split(" ")[1]), headers, sock


def client_handshake(port: int, timeout: float = TIMEOUT) -> RawPeer:
    """Open a raw client connection to a simplews server and check its 101 answer."""
    request, key = request_bytes(port)
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(request)
    head, leftover = read_http_head(sock, timeout)
    start, headers = parse_head(head)
    assert start.startswith("HTTP/1.1 101 "), start
    assert header(headers, "sec-websocket-accept") == accept_for(key)
    assert (header(headers, "upgrade") or "").lower() == "websocket"
    assert "upgrade" in (header(headers, "connection") or "").lower()
    assert header(headers, "sec-websocket-extensions") is None
    return RawPeer(sock, is_client=True, leftover=leftover)


def server_handshake(
    sock: socket.socket, *, response: Optional[bytes] = None, timeout: float = TIMEOUT
) -> Tuple[RawPeer, List[Tuple[str, str]]]:
    """Answer a client's upgrade by hand (or with ``response``); return the raw server peer and the request headers."""
    head, leftover = read_http_head(sock, timeout)
    start, headers = parse_head(head)
    assert start.startswith("GET ") and start.endswith(" HTTP/1.1"), start
    key = header(headers, "sec-websocket-key")
    assert key is not None and len(base64.b64decode(key)) == 16
    assert header(headers, "sec-websocket-version") == "13"
    if response is None:
        response = (
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_for(key)}\r\n\r\n"
        ).encode("ascii")
    sock.sendall(response.replace(b"{accept}", accept_for(key).encode("ascii")))
    return RawPeer(sock, is_client=False, leftover=leftover), headers
