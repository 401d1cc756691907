"""simplews: a threaded, synchronous WebSocket library (RFC 6455, RFC 7692).

A blocking client, a thread-per-connection server and callback handlers;
no event loop anywhere. Quick start::

    import simplews

    with simplews.serve(on_message=lambda ws, msg: ws.send(msg), port=0) as server:
        with simplews.connect(server.url) as ws:
            ws.send("hello")
            assert ws.recv(timeout=5) == "hello"

Public names are imported lazily, so ``import simplews`` stays fast and
starts no thread.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Dict, List

__version__ = "0.1.0"

__all__ = [
    "connect",
    "Client",
    "serve",
    "Server",
    "Connection",
    "Request",
    "Response",
    "Headers",
    "Router",
    "basic_auth",
    "chain_hooks",
    "Outbox",
    "State",
    "CloseCode",
    "DeflateConfig",
    "ConnectionOptions",
    "ClientOptions",
    "ServerOptions",
    "RedisBroadcast",
    "BroadcastStats",
    "BroadcastBus",
    "FanoutStats",
    "WebSocketError",
    "InvalidURI",
    "ConnectError",
    "HostNotFound",
    "ConnectionRefused",
    "ProxyError",
    "TLSError",
    "RedisUnavailable",
    "WebSocketTimeout",
    "OpenTimeout",
    "InvalidHandshake",
    "InvalidStatus",
    "InvalidHeader",
    "NegotiationError",
    "ProtocolError",
    "LocalProtocolError",
    "RemoteProtocolError",
    "PayloadTooBig",
    "ConnectionClosed",
    "ConnectionClosedOK",
    "ConnectionClosedError",
    "MissingDependency",
    "OutboxFull",
    "__version__",
]

_LAZY: Dict[str, str] = {
    "connect": "client",
    "Client": "client",
    "serve": "server",
    "Server": "server",
    "Connection": "connection",
    "Request": "handshake",
    "Response": "handshake",
    "Headers": "handshake",
    "Router": "routing",
    "basic_auth": "auth",
    "chain_hooks": "hooks",
    "Outbox": "outbox",
    "State": "protocol",
    "CloseCode": "frames",
    "DeflateConfig": "deflate",
    "ConnectionOptions": "options",
    "ClientOptions": "options",
    "ServerOptions": "options",
    "RedisBroadcast": "cluster",
    "BroadcastStats": "cluster",
    "BroadcastBus": "fanout",
    "FanoutStats": "fanout",
}
_LAZY.update({name: "exceptions" for name in __all__ if name not in _LAZY and name != "__version__"})

if TYPE_CHECKING:  # pragma: no cover
    from .auth import basic_auth
    from .client import Client, connect
    from .cluster import BroadcastStats, RedisBroadcast
    from .connection import Connection
    from .deflate import DeflateConfig
    from .exceptions import (
        ConnectError,
        ConnectionClosed,
        ConnectionClosedError,
        ConnectionClosedOK,
        ConnectionRefused,
        HostNotFound,
        InvalidHandshake,
        InvalidHeader,
        InvalidStatus,
        InvalidURI,
        LocalProtocolError,
        MissingDependency,
        NegotiationError,
        OpenTimeout,
        OutboxFull,
        PayloadTooBig,
        ProtocolError,
        ProxyError,
        RedisUnavailable,
        RemoteProtocolError,
        TLSError,
        WebSocketError,
        WebSocketTimeout,
    )
    from .fanout import BroadcastBus, FanoutStats
    from .frames import CloseCode
    from .handshake import Headers, Request, Response
    from .hooks import chain_hooks
    from .options import ClientOptions, ConnectionOptions, ServerOptions
    from .outbox import Outbox
    from .protocol import State
    from .routing import Router
    from .server import Server, serve


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'simplews' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
