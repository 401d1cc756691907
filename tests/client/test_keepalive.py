"""Keepalive: a peer that stops answering is detected and the connection ends with 1011."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any, List, Tuple

import pytest
from helpers import wait_for

import simplews

from .conftest import accept_handshake


def black_hole(conn: socket.socket) -> None:
    """Complete the handshake, then read and discard everything, answering nothing."""
    accept_handshake(conn)
    while conn.recv(65536):
        pass


def test_client_detects_a_silent_peer_and_closes_with_1011(raw_peer: Any) -> None:
    peer = raw_peer(black_hole)
    closes: List[Tuple[int, str]] = []
    client = simplews.Client(
        f"ws://127.0.0.1:{peer.port}/",
        on_close=lambda ws, code, reason: closes.append((code, reason)),
        ping_interval=0.3,
        ping_timeout=0.3,
        close_timeout=30,  # a dead peer must not make us wait this out
    )
    client.start()
    try:
        # about ping_interval + ping_timeout; the bound is generous for loaded machines, far below close_timeout
        assert wait_for(lambda: closes, timeout=10), "dead peer not detected"
        assert closes == [(1011, "keepalive ping timeout")]
        assert wait_for(lambda: not client.running, timeout=10), "client thread still waiting on a dead peer"
    finally:
        client.stop(timeout=10)


def test_blocking_connection_nobody_reads_detects_a_silent_peer(raw_peer: Any) -> None:
    peer = raw_peer(black_hole)
    ws = simplews.connect(f"ws://127.0.0.1:{peer.port}/", ping_interval=0.3, ping_timeout=0.3, close_timeout=30)
    try:
        assert wait_for(lambda: ws.closed, timeout=10)
        assert ws.close_code == 1011
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=5)
        assert info.value.code == 1011
    finally:
        ws.close()


def test_blocked_recv_is_woken_by_a_keepalive_failure(raw_peer: Any) -> None:
    peer = raw_peer(black_hole)
    ws = simplews.connect(f"ws://127.0.0.1:{peer.port}/", ping_interval=0.3, ping_timeout=0.3, close_timeout=30)
    try:
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=10)  # no message will come: the keepalive failure must end this wait
        assert info.value.code == 1011
    finally:
        ws.close()


def test_peer_that_dies_after_answering_pings_for_a_while(raw_peer: Any) -> None:
    """A peer that answers pings, then goes silent (the link drops without a FIN)."""
    answered: List[int] = []

    def pongs_three_then_silence(conn: socket.socket) -> None:
        accept_handshake(conn)
        buf = b""
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                return
            if len(answered) >= 3:
                continue  # dead from now on
            buf += chunk
            while len(buf) >= 6:
                length = buf[1] & 0x7F  # pings are short: 7-bit length, masked
                if len(buf) < 6 + length:
                    break
                opcode, mask, payload = buf[0] & 0x0F, buf[2:6], buf[6 : 6 + length]
                buf = buf[6 + length :]
                if opcode == 0x9:
                    data = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                    conn.sendall(bytes([0x8A, len(data)]) + data)
                    answered.append(1)

    peer = raw_peer(pongs_three_then_silence)
    closes: List[int] = []
    client = simplews.Client(
        f"ws://127.0.0.1:{peer.port}/",
        on_close=lambda ws, code, reason: closes.append(code),
        ping_interval=0.2,
        ping_timeout=0.5,
        close_timeout=30,
        compression=None,
    )
    with client:
        assert wait_for(lambda: closes, timeout=15)
    assert len(answered) >= 3 and closes == [1011]


def test_healthy_peer_is_kept_across_many_ping_intervals(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url, ping_interval=0.1, ping_timeout=2) as ws:
        deadline = time.monotonic() + 1.5  # about fifteen keepalive rounds
        while time.monotonic() < deadline:
            ws.send("still here")
            assert ws.recv(timeout=5) == "still here"
            time.sleep(0.1)
        assert not ws.closed
    assert ws.close_code == 1000


def test_close_on_a_peer_known_dead_does_not_wait_out_close_timeout(raw_peer: Any) -> None:
    """close() while a keepalive ping is unanswered ends once ping_timeout passes, not close_timeout."""
    peer = raw_peer(black_hole)
    ws = simplews.connect(f"ws://127.0.0.1:{peer.port}/", ping_interval=0.2, ping_timeout=0.6, close_timeout=30)
    assert wait_for(lambda: ws._liveness.awaiting is not None, timeout=10)  # a keepalive ping is out
    done: List[bool] = []
    thread = threading.Thread(target=lambda: (ws.close(), done.append(True)))
    thread.start()
    assert wait_for(lambda: done, timeout=10), "close() waited out close_timeout on a dead peer"
    thread.join(10)
    assert ws.closed and ws.close_code == 1006


def test_silent_peer_over_tls_is_detected(raw_peer: Any, server_tls: Any, client_tls: Any) -> None:
    def tls_black_hole(conn: socket.socket) -> None:
        tls = server_tls.wrap_socket(conn, server_side=True)
        black_hole(tls)  # type: ignore[arg-type]

    peer = raw_peer(tls_black_hole)
    closes: List[Tuple[int, str]] = []
    client = simplews.Client(
        f"wss://localhost:{peer.port}/",
        on_close=lambda ws, code, reason: closes.append((code, reason)),
        ping_interval=0.3,
        ping_timeout=0.3,
        close_timeout=30,
        ssl_context=client_tls,
    )
    client.start()
    try:
        assert wait_for(lambda: closes, timeout=10), "dead TLS peer not detected"
        assert closes == [(1011, "keepalive ping timeout")]
        assert wait_for(lambda: not client.running, timeout=10)
    finally:
        client.stop(timeout=10)
