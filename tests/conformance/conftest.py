"""Fixtures of the conformance suite (see endpoints.py for what a Session is)."""

from __future__ import annotations

import queue
import socket
from typing import Any, Callable, Iterator, List

import pytest
from endpoints import BASE_OPTIONS, JOIN_TIMEOUT, ROLES, EchoClient, Session, echo
from rawpeer import client_handshake, server_handshake

import simplews


@pytest.fixture
def open_session() -> Iterator[Callable[..., Session]]:
    """Factory: ``open_session(role, **simplews_options)`` connects a raw peer to a fresh simplews echo endpoint."""
    cleanups: List[Callable[[], Any]] = []

    def start(role: str, **options: Any) -> Session:
        opts = dict(BASE_OPTIONS, **options)
        codes: queue.Queue[int] = queue.Queue()
        if role == "server":
            server = simplews.serve(
                on_message=echo,
                on_close=lambda ws, code, reason: codes.put(code),
                port=0,
                **opts,
            )
            cleanups.append(server.shutdown)
            peer = client_handshake(server.port)
            cleanups.append(peer.close)
            return Session(role, peer, codes, None)
        listener = socket.create_server(("127.0.0.1", 0))
        cleanups.append(listener.close)
        listener.settimeout(JOIN_TIMEOUT)
        client = EchoClient(f"ws://127.0.0.1:{listener.getsockname()[1]}/", opts)
        cleanups.append(client.join)
        sock, _ = listener.accept()
        peer, _ = server_handshake(sock)
        cleanups.append(peer.close)
        return Session(role, peer, codes, client)

    yield start
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture(params=ROLES)
def session(request: pytest.FixtureRequest, open_session: Callable[..., Session]) -> Session:
    """A raw peer against simplews as a server, then as a client."""
    return open_session(request.param)
