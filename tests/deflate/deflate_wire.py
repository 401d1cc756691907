"""Helpers for the permessage-deflate tests: a byte-counting TCP relay, a frame
parser for its captures, a raw WebSocket client that speaks frames by hand, and
deflate payloads built without our own code."""

from __future__ import annotations

import base64
import dataclasses
import os
import random
import socket
import threading
import zlib
from typing import List, Optional, Tuple, Union

from simplews.frames import apply_mask, encode_header, parse_header

TAIL = b"\x00\x00\xff\xff"


@dataclasses.dataclass
class FrameInfo:
    """One frame header seen on the wire."""

    fin: bool
    rsv1: bool
    opcode: int
    length: int
    header: int = 2

    @property
    def size(self) -> int:
        """Header plus payload bytes."""
        return self.header + self.length


def parse_frames(stream: bytes, *, after_head: bool = True) -> List[FrameInfo]:
    """Split a captured byte stream (after the HTTP head, unless ``after_head`` is false) into frame headers."""
    pos = stream.index(b"\r\n\r\n") + 4 if after_head else 0
    frames = []
    while True:
        header = parse_header(stream, pos)
        if header is None:
            return frames
        b0, _masked, length, size = header
        fin, rsv1, opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
        frames.append(FrameInfo(fin, rsv1, opcode, length, size))
        pos += size + length


class Relay:
    """A TCP relay on 127.0.0.1 that forwards one connection to ``target`` and records both directions."""

    def __init__(self, target: Tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.up = bytearray()  # client -> server
        self.down = bytearray()  # server -> client
        self._threads: List[threading.Thread] = []
        self._socks: List[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, name="relay-accept", daemon=True)
        self._acceptor.start()

    @property
    def port(self) -> int:
        """The port clients connect to."""
        return self.listener.getsockname()[1]

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        upstream = socket.create_connection(self.target)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # forward small frames at once
        self._socks += [client, upstream]
        for src, dst, log in ((client, upstream, self.up), (upstream, client, self.down)):
            thread = threading.Thread(target=self._pump, args=(src, dst, log), name="relay-pump", daemon=True)
            self._threads.append(thread)
            thread.start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, log: bytearray) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                log += data
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def close(self) -> None:
        """Stop relaying and join the relay's threads."""
        _shutdown(self.listener)  # wakes a thread blocked in accept()
        self._acceptor.join(10)
        for sock in self._socks:
            _shutdown(sock)  # wakes the pumps
        for thread in self._threads:
            thread.join(10)
        for sock in (self.listener, *self._socks):
            sock.close()


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def compressible(size: int, seed: int = 0) -> bytes:
    """Sensor-like text: repetitive enough to deflate well, varied enough to need the window."""
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        out += b"sensor=%d temp=%.2f hum=%d;" % (rng.randrange(16), rng.uniform(10, 30), rng.randrange(100))
    return bytes(out[:size])


def raw_deflate(data: bytes, wbits: int = 15) -> bytes:
    """One message compressed the RFC 7692 way with zlib directly (sync flush, tail removed)."""
    comp = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


def bomb(inflated: int, block: int = 1 << 20) -> bytes:
    """Deflate data (no tail) that inflates to ``inflated`` zero bytes, built from one repeated
    full-flush block so that making it costs milliseconds, not a gigabyte of zlib work."""
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    comp.compress(b"")
    one = comp.compress(b"\x00" * block) + comp.flush(zlib.Z_FULL_FLUSH)  # no reference to earlier blocks
    check = zlib.decompressobj(-15)
    assert check.decompress(one * 2) == b"\x00" * (2 * block)
    return one * (inflated // block)


class RawClient:
    """A WebSocket client that writes frames by hand: for testing what a server does with them."""

    def __init__(self, port: int, extensions: Union[str, List[str], None], timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET / HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
        ]
        for value in [extensions] if isinstance(extensions, str) else extensions or []:
            lines.append(f"Sec-WebSocket-Extensions: {value}")
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = bytearray()
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            assert chunk, "server closed during the handshake"
            self.buf += chunk
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        self.last_raw = b""
        self.status = int(head.split(b" ", 2)[1])
        self.headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()

    @property
    def extensions(self) -> Optional[str]:
        """The server's Sec-WebSocket-Extensions answer, if any."""
        return self.headers.get("sec-websocket-extensions")

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> None:
        """Send one masked frame."""
        key = os.urandom(4)
        self.sock.sendall(encode_header(opcode, len(payload), fin=fin, rsv1=rsv1, mask_key=key) + apply_mask(payload, key))

    def recv_frame(self) -> Tuple[FrameInfo, bytes]:
        """Read one (unmasked) frame from the server; raise EOFError when the stream ends first."""
        while True:
            header = parse_header(self.buf, 0)
            if header is not None:
                b0, _masked, length, size = header
                fin, rsv1, opcode = bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F
                if len(self.buf) >= size + length:
                    payload = bytes(self.buf[size : size + length])
                    self.last_raw = bytes(self.buf[: size + length])  # the frame exactly as received
                    del self.buf[: size + length]
                    return FrameInfo(fin, rsv1, opcode, length, size), payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise EOFError("connection closed by the server")
            self.buf += chunk

    def recv_close_code(self) -> int:
        """Read frames until the server's close frame; return its code."""
        while True:
            info, payload = self.recv_frame()
            if info.opcode == 8:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        """Close the TCP connection."""
        self.sock.close()
