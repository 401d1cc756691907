"""Point 6: graceful shutdown, also under SIGINT/SIGTERM, with slow and silent clients."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from typing import Any, List

import pytest
from helpers import our_threads, wait_for
from server_raw import open_raw, read_frame

import simplews


def test_shutdown_closes_everyone_with_1001_and_stops_accepting() -> None:
    closes: List[int] = []
    server = simplews.serve(on_message=lambda ws, m: ws.send(m), on_close=lambda ws, c, r: closes.append(c), port=0)
    clients = [simplews.connect(server.url) for _ in range(5)]
    assert wait_for(lambda: len(server.connections) == 5, timeout=20)
    server.shutdown(timeout=10)
    for ws in clients:
        with pytest.raises(simplews.ConnectionClosedOK) as info:
            ws.recv(timeout=10)
        assert info.value.code == 1001 and info.value.reason == ""
    assert sorted(closes) == [1001] * 5
    with pytest.raises(simplews.ConnectError):
        simplews.connect(server.url, open_timeout=5)
    assert server.connections == [] and not [t for t in our_threads() if "conn" in t.name or "accept" in t.name]


def test_shutdown_forces_clients_that_never_answer_the_close() -> None:
    server = simplews.serve(port=0)
    silent, buf = open_raw(server.port)  # reads, but never sends its close frame back
    polite = simplews.connect(server.url)
    assert wait_for(lambda: len(server.connections) == 2, timeout=20)
    server.shutdown(timeout=0.5)
    opcode, payload = read_frame(silent, buf)
    assert opcode == 0x8 and struct.unpack("!H", payload[:2])[0] == 1001
    assert read_frame(silent, buf) is None  # then the server closed TCP: forced
    assert wait_for(lambda: polite.closed, timeout=30)
    silent.close()


@pytest.mark.timeout(60)
def test_shutdown_is_not_blocked_by_a_client_that_never_reads() -> None:
    """A handler blocked in send() to a client that does not read holds the write lock;
    shutdown still closes the others with 1001 and finishes (forcing the stuck one)."""
    stuck = threading.Event()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        if message == "flood me":
            stuck.set()
            while True:
                ws.send(b"x" * 1_000_000)  # ends with ConnectionClosed once shutdown forces it

    server = simplews.serve(on_message=on_message, port=0, compression=None)
    flooded, _ = open_raw(server.port)
    flooded.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    flooded.sendall(b"\x81\x88\x00\x00\x00\x00flood me")
    others = [simplews.connect(server.url) for _ in range(3)]
    assert stuck.wait(10)
    assert wait_for(lambda: len(server.connections) == 4, timeout=20)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (server.shutdown(timeout=1.0), done.set()))
    thread.start()
    for ws in others:
        with pytest.raises(simplews.ConnectionClosedOK) as info:
            ws.recv(timeout=10)
        assert info.value.code == 1001
    thread.join(30)
    assert done.is_set()
    flooded.close()


def test_shutdown_twice_and_from_two_threads() -> None:
    server = simplews.serve(port=0)
    ws = simplews.connect(server.url)
    threads = [threading.Thread(target=server.shutdown) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    server.shutdown()
    assert wait_for(lambda: ws.closed, timeout=30) and ws.close_code == 1001


def test_shutdown_from_inside_a_handler() -> None:
    server = simplews.serve(on_message=lambda ws, m: server.shutdown(timeout=5), port=0)
    ws = simplews.connect(server.url)
    ws.send("stop")
    with pytest.raises(simplews.ConnectionClosedOK):
        ws.recv(timeout=10)
    assert wait_for(lambda: server._stopped.is_set(), timeout=20)


def test_shutdown_drops_handshakes_in_progress() -> None:
    server = simplews.serve(port=0, handshake_timeout=60)
    half = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    half.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    assert wait_for(lambda: server._live_count() == 1, timeout=20)
    server.shutdown(timeout=5)
    try:
        assert half.recv(100) == b""
    except ConnectionResetError:
        pass
    half.close()


SERVER_SCRIPT = textwrap.dedent(
    """
    import sys
    import simplews

    server = simplews.Server(on_message=lambda ws, m: ws.send(m), port=0, close_timeout=5)
    print(server.url, flush=True)
    server.serve_forever()
    import threading
    print("clean exit", [t.name for t in threading.enumerate()], flush=True)
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_shut_serve_forever_down_gracefully(signum: int) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("ws://"), proc.stderr.read()
        clients = [simplews.connect(url) for _ in range(3)]
        for ws in clients:
            ws.send("up")
            assert ws.recv(timeout=10) == "up"
        proc.send_signal(signum)
        for ws in clients:
            with pytest.raises(simplews.ConnectionClosedOK) as info:
                ws.recv(timeout=20)
            assert info.value.code == 1001
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        assert out.strip() == "clean exit ['MainThread']" and err == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
