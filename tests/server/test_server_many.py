"""Point 7: a thousand concurrent connections on one server, one thread each, all echo, all close."""

from __future__ import annotations

import ctypes
import resource
import socket
import struct
import sys
import threading
from typing import Any, List, Tuple

import pytest
from helpers import our_threads, wait_for
from server_raw import client_frame, read_frame, read_response, upgrade_request

import simplews

N = 1000


def vm_rss_kib() -> int:
    """This process's resident memory (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.fixture
def enough_fds() -> Any:
    """Both ends of N connections live in this process: raise the soft fd limit if needed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * N + 200
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(300)
def test_a_thousand_concurrent_connections(enough_fds: Any, capsys: Any) -> None:
    closes: List[int] = []
    rss_before = vm_rss_kib()
    server = simplews.serve(
        on_message=lambda ws, m: ws.send(m), on_close=lambda ws, code, reason: closes.append(code),
        port=0, compression=None, ping_interval=None, backlog=N,
    )
    conns: List[Tuple[socket.socket, bytearray]] = []
    try:
        for _ in range(N):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
            sock.sendall(upgrade_request())
            conns.append((sock, bytearray()))
        for sock, buf in conns:
            status, _, rest = read_response(sock)
            assert status == 101
            buf += rest
        assert wait_for(lambda: len(server.connections) == N, timeout=60)
        per_conn = (vm_rss_kib() - rss_before) / N
        threads = our_threads()
        # one thread per connection, plus the accept thread and the process-wide keepalive thread
        # (one per selector where select() caps the sockets a selector holds, as on Windows)
        assert len([t for t in threads if t.name.startswith("simplews-conn")]) == N
        shards = len([t for t in threads if t.name == "simplews-keepalive"])
        assert 1 <= shards <= (N // 500) + 1
        assert len(threads) <= N + 1 + shards
        for i, (sock, _) in enumerate(conns):
            sock.sendall(client_frame(f"echo {i}".encode()))
        for i, (sock, buf) in enumerate(conns):
            assert read_frame(sock, buf) == (0x1, f"echo {i}".encode())
        for sock, _ in conns:
            sock.sendall(client_frame(struct.pack("!H", 1000) + b"bye", opcode=0x8))
        for sock, buf in conns:
            assert read_frame(sock, buf) == (0x8, struct.pack("!H", 1000) + b"bye")
            assert read_frame(sock, buf) is None  # the server then closes TCP
        # on_close runs before the server forgets the connection: wait for both
        assert wait_for(lambda: len(closes) == N and not server.connections, timeout=60), (len(closes), len(server.connections))
        assert set(closes) == {1000}
        with capsys.disabled():
            print(f"\n{N} idle connections: {per_conn:.1f} KiB resident each "
                  f"(thread stack size {server.options.thread_stack_size // 1024} KiB)")
    finally:
        for sock, _ in conns:
            sock.close()
        server.shutdown()


def thread_stack_size() -> int:
    """The stack size of the calling thread, as glibc reports it."""
    libc = ctypes.CDLL(None)
    libc.pthread_self.restype = ctypes.c_ulong
    attr = ctypes.create_string_buffer(256)  # larger than any pthread_attr_t
    assert libc.pthread_getattr_np(ctypes.c_ulong(libc.pthread_self()), attr) == 0
    size = ctypes.c_size_t()
    try:
        assert libc.pthread_attr_getstacksize(attr, ctypes.byref(size)) == 0
    finally:
        libc.pthread_attr_destroy(attr)
    return size.value


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pthread_getattr_np is glibc's")
@pytest.mark.parametrize("option, expected", [({}, 512 * 1024), ({"thread_stack_size": 1024 * 1024}, 1024 * 1024)])
def test_connection_threads_get_the_configured_stack(server_factory: Any, option: Any, expected: int) -> None:
    sizes: List[int] = []
    server = server_factory(on_open=lambda ws: sizes.append(thread_stack_size()), **option)
    with simplews.connect(server.url):
        assert wait_for(lambda: sizes, timeout=20)
    assert sizes == [expected]
    assert threading.stack_size() == 0  # the process-wide default is left as it was


def test_thread_stack_size_is_checked() -> None:
    with pytest.raises(ValueError):
        simplews.Server(port=0, thread_stack_size=1024)
