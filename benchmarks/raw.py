"""The raw TCP baseline: what a minimal threaded library costs with no WebSocket.

Length-prefixed messages (4-byte big-endian length, top bit = text), written
with one ``send`` (two for large payloads, so they are never copied to
prepend a header; ``sendall`` only for what a short write left), read with ``recv_into`` a reusable per-connection buffer,
and a thread-per-connection server calling the handler on the connection's
own thread.  Client sockets set ``TCP_NODELAY`` (as the libraries' clients
do); accepted server sockets keep the OS default (Nagle on), as
``socketserver`` and the threaded libraries' servers leave them, so a burst
of small ``sendall`` calls coalesces into few segments.  Every workload runs the same pattern over this baseline; the
ratios in the results table are library / baseline.  With an
``ssl.SSLContext`` both sides run the same code over ``ssl``-wrapped
sockets (the raw TLS baseline of the ``*-tls`` workloads).
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Callable, Optional, Set, Union

from benchmarks.codec import RAW_TEXT_FLAG

Message = Union[str, bytes]
LARGE = 16 * 1024
CLIENT_BUFFER = 256 * 1024
# Server connections keep a small buffer: idle memory per connection is one
# of the workloads, and a real threaded server would not pin 64 KiB each.
SERVER_BUFFER = 4 * 1024


class RawConnection:
    """One length-prefixed message connection."""

    def __init__(self, sock: socket.socket, bufsize: int = CLIENT_BUFFER,
                 nodelay: bool = True) -> None:
        if nodelay:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._buf = bytearray(bufsize)
        self._view = memoryview(self._buf)
        self._start = 0
        self._end = 0
        self._lock = threading.Lock()

    @classmethod
    def connect(cls, host: str, port: int, timeout: Optional[float] = None,
                context: Optional[ssl.SSLContext] = None) -> RawConnection:
        """Open a client connection (over TLS with ``context``)."""
        sock = socket.create_connection((host, port), timeout=timeout)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host)
        return cls(sock)

    def send(self, message: Message) -> None:
        """Send a str as text or a bytes-like object as binary."""
        if isinstance(message, str):
            self._send(message.encode(), RAW_TEXT_FLAG)
        else:
            self._send(message, 0)

    def send_text(self, message: str) -> None:
        """Send a text message."""
        self._send(message.encode(), RAW_TEXT_FLAG)

    def send_binary(self, message: bytes) -> None:
        """Send a binary message."""
        self._send(message, 0)

    def _send(self, data: bytes, flag: int) -> None:
        header = (len(data) | flag).to_bytes(4, "big")
        with self._lock:
            if len(data) < LARGE:
                self._write(header + data)
            else:
                self._write(header)
                self._write(data)

    def _write(self, data: bytes) -> None:
        """Write all of ``data``: one ``send`` (C code even for ``ssl`` sockets,
        whose ``sendall`` is a Python loop), ``sendall`` for any remainder."""
        sent = self.sock.send(data)
        if sent < len(data):
            self.sock.sendall(memoryview(data)[sent:])

    def recv(self) -> Message:
        """Return the next message; raise ConnectionError at end of stream."""
        buf, view = self._buf, self._view
        while True:
            start, avail = self._start, self._end - self._start
            if avail >= 4:
                value = int.from_bytes(view[start:start + 4], "big")
                size = value & ~RAW_TEXT_FLAG
                if avail >= 4 + size:
                    begin = start + 4
                    self._start = begin + size
                    if value & RAW_TEXT_FLAG:
                        return str(view[begin:begin + size], "utf-8")
                    return bytes(view[begin:begin + size])
                if 4 + size > len(buf):
                    return self._recv_large(size, value & RAW_TEXT_FLAG)
            self._fill()

    def _fill(self) -> None:
        """Read more bytes, compacting the buffer when its tail is short."""
        if self._start == self._end:
            self._start = self._end = 0
        elif len(self._buf) - self._end < 4096 or self._start > len(self._buf) // 2:
            size = self._end - self._start
            self._buf[:size] = self._view[self._start:self._end]
            self._start, self._end = 0, size
        n = self.sock.recv_into(self._view[self._end:])
        if not n:
            raise ConnectionError("connection closed")
        self._end += n

    def _recv_large(self, size: int, text: int) -> Message:
        """Read a message larger than the buffer straight into its own buffer."""
        payload = bytearray(size)
        have = self._end - self._start - 4
        payload[:have] = self._view[self._start + 4:self._end]
        self._start = self._end = 0
        target = memoryview(payload)
        while have < size:
            n = self.sock.recv_into(target[have:])
            if not n:
                raise ConnectionError("connection closed")
            have += n
        return payload.decode() if text else bytes(payload)

    def close(self) -> None:
        """Close the socket."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


Handler = Callable[[Callable[[Message], None], Message], None]


class RawServer:
    """Thread-per-connection server: ``on_message(send, message)`` per message."""

    def __init__(self, on_message: Handler, host: str = "127.0.0.1", port: int = 0,
                 context: Optional[ssl.SSLContext] = None) -> None:
        self.on_message = on_message
        self.context = context
        self.listener = socket.create_server((host, port), backlog=1024)
        self.port = self.listener.getsockname()[1]
        self.connections: Set[RawConnection] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        """Accept connections in a daemon thread."""
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def shutdown(self) -> None:
        """Stop accepting."""
        self.listener.close()

    def broadcast(self, message: Message) -> int:
        """Send ``message`` to every connection; return how many got it."""
        with self._lock:
            conns = list(self.connections)
        sent = 0
        for conn in conns:
            try:
                conn.send(message)
                sent += 1
            except OSError:
                pass
        return sent

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        if self.context is not None:  # the TLS handshake runs on the connection's thread
            try:
                sock = self.context.wrap_socket(sock, server_side=True)
            except OSError:
                sock.close()
                return
        conn = RawConnection(sock, SERVER_BUFFER, nodelay=False)
        with self._lock:
            self.connections.add(conn)
        send, recv, on_message = conn.send, conn.recv, self.on_message
        try:
            while True:
                on_message(send, recv())
        except (OSError, ValueError):
            pass
        finally:
            with self._lock:
                self.connections.discard(conn)
            conn.close()
