"""Server.shutdown() racing a handshake: a client that got 101 is closed with 1001, never aborted.

Found by the pytest fixtures' shape (connect, then shut the server down at once): the upgraded
socket was still counted as a pending handshake, so shutdown() cut it off and the client saw
1006. A raw client is used so that nothing on our client side can hide the difference.
"""

from __future__ import annotations

import base64
import os
import socket
import threading
from typing import Tuple

import pytest

import simplews


def _read(sock: socket.socket, buf: bytes, size: int) -> Tuple[bytes, bool]:
    """Read until ``buf`` has ``size`` bytes; ``False`` if the stream ended or was reset first."""
    while len(buf) < size:
        try:
            chunk = sock.recv(4096)
        except ConnectionResetError:
            return buf, False
        if not chunk:
            return buf, False
        buf += chunk
    return buf, True


def _attempt() -> str:
    """One handshake with a shutdown in flight; what the client saw."""
    server = simplews.serve(on_message=lambda ws, m: ws.send(m), port=0, compression=None)
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    stopper = threading.Thread(target=server.shutdown)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        stopper.start()
        head = b""
        while b"\r\n\r\n" not in head:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return "refused before upgrading"
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return "refused before upgrading"
        frame, complete = _read(sock, rest, 2)
        if complete:
            frame, complete = _read(sock, frame, 2 + (frame[1] & 0x7F))
        assert complete, "the server upgraded the connection, then dropped it without a close frame"
        assert frame[0] == 0x88 and int.from_bytes(frame[2:4], "big") == 1001, frame
        mask = os.urandom(4)
        sock.sendall(b"\x88\x82" + mask + bytes(b ^ mask[i % 4] for i, b in enumerate((1001).to_bytes(2, "big"))))
        return "closed with 1001"
    finally:
        sock.close()
        if stopper.ident is not None:
            stopper.join(30)
        else:
            server.shutdown()


@pytest.mark.timeout(120)
def test_shutdown_during_handshakes_closes_upgraded_clients_with_1001() -> None:
    outcomes = [_attempt() for _ in range(40)]
    assert set(outcomes) <= {"refused before upgrading", "closed with 1001"}
