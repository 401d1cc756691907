"""Peers for the message and control tests: the websockets library's sync server, and a recording proxy."""

from __future__ import annotations

import socket
import threading
from typing import Any, Callable, Iterator, List

import pytest
from helpers import pump
from websockets.sync.server import serve as ws_serve


@pytest.fixture
def peer_server() -> Iterator[Callable[..., str]]:
    """Start the websockets library's sync server with ``handler(ws)``; yields a starter returning its URL."""
    started: List[Any] = []

    def start(handler: Callable[[Any], None], **kwargs: Any) -> str:
        kwargs.setdefault("compression", None)
        server = ws_serve(handler, "127.0.0.1", 0, **kwargs)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        started.append((server, thread))
        return f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"

    yield start
    for server, thread in started:
        server.shutdown()
        thread.join(10)


class RecordingProxy:
    """A TCP proxy on 127.0.0.1 recording the bytes each way (one connection)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.upstream = bytearray()  # client -> server
        self.downstream = bytearray()  # server -> client
        self.threads: List[threading.Thread] = []
        self.sockets: List[socket.socket] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self.threads.append(accept)

    def _accept(self) -> None:
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.target))
        self.sockets += [client, server]
        for src, dst, record in ((client, server, self.upstream), (server, client, self.downstream)):
            thread = threading.Thread(target=self._pump, args=(src, dst, record), daemon=True)
            thread.start()
            self.threads.append(thread)

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket, record: bytearray) -> None:
        recording = _Recorder(src, record)
        pump(recording, dst)  # type: ignore[arg-type]

    def close(self) -> None:
        self.listener.close()
        for sock in self.sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for thread in self.threads:
            thread.join(10)
        for sock in self.sockets:
            sock.close()


class _Recorder:
    """A socket's ``recv`` that keeps a copy of what it returns."""

    def __init__(self, sock: socket.socket, record: bytearray) -> None:
        self.sock, self.record = sock, record

    def recv(self, size: int) -> bytes:
        data = self.sock.recv(size)
        self.record += data
        return data


@pytest.fixture
def recording_proxy() -> Iterator[Callable[[int], RecordingProxy]]:
    """Start a :class:`RecordingProxy` in front of a port; closed after the test."""
    proxies: List[RecordingProxy] = []

    def start(port: int) -> RecordingProxy:
        proxy = RecordingProxy(port)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()

