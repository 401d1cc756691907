"""Raw-socket HTTP and WebSocket helpers for the server tests (no simplews code on the client side)."""

from __future__ import annotations

import base64
import os
import socket
import struct
from typing import Dict, Optional, Tuple


def upgrade_request(path: str = "/", host: str = "127.0.0.1", extra: str = "") -> bytes:
    """A valid client opening handshake (RFC 6455 section 4.1), with extra header lines."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


def read_response(sock: socket.socket) -> Tuple[int, Dict[str, str], bytes]:
    """Read an HTTP response: status, headers (lower-case names) and the body by Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before the response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0")) if status != 101 else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def http(port: int, request: bytes, host: str = "127.0.0.1") -> Tuple[int, Dict[str, str], bytes]:
    """Send one raw request and read the answer on a fresh connection."""
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(request)
        return read_response(sock)


def get(port: int, path: str = "/", extra: str = "") -> Tuple[int, Dict[str, str], bytes]:
    """A plain browser-like GET (no Upgrade)."""
    return http(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n{extra}\r\n".encode())


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (fixed zero mask keeps it simple and valid)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    return head + b"\x00\x00\x00\x00" + payload


def read_frame(sock: socket.socket, buf: bytearray) -> Optional[Tuple[int, bytes]]:
    """Read one unmasked server frame from ``sock`` (``buf`` keeps leftovers); ``None`` at EOF."""
    while True:
        if len(buf) >= 2:
            opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
            pos = 2
            if n == 126:
                if len(buf) < 4:
                    n = -1
                else:
                    n, pos = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127:
                if len(buf) < 10:
                    n = -1
                else:
                    n, pos = struct.unpack("!Q", buf[2:10])[0], 10
            if n >= 0 and len(buf) >= pos + n:
                payload = bytes(buf[pos : pos + n])
                del buf[: pos + n]
                return opcode, payload
        chunk = sock.recv(65536)
        if not chunk:
            return None
        buf += chunk


def open_raw(port: int, path: str = "/", host: str = "127.0.0.1", extra: str = "") -> Tuple[socket.socket, bytearray]:
    """Open a WebSocket with a raw socket; return it and the read buffer."""
    sock = socket.create_connection((host, port), timeout=10)
    sock.sendall(upgrade_request(path, host, extra))
    status, _, rest = read_response(sock)
    assert status == 101
    return sock, bytearray(rest)


def never_reading_client(port: int) -> socket.socket:
    """A raw WebSocket client with a tiny receive buffer that will never read again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the head is consumed
    assert head.startswith(b"HTTP/1.1 101")
    return sock
