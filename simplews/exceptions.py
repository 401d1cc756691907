"""The one error hierarchy of simplews.

Every exception a user can catch derives from :class:`WebSocketError`::

    WebSocketError
    ├── InvalidURI                  a URL that cannot be used (raised before any I/O)
    ├── ConnectError                the transport could not be opened
    │   ├── HostNotFound            DNS lookup failed
    │   ├── ConnectionRefused       nothing listens at the address
    │   ├── ProxyError              the HTTP proxy refused or failed the CONNECT
    │   ├── TLSError                TLS handshake or certificate verification failed
    │   └── RedisUnavailable        RedisBroadcast.start() could not reach Redis
    ├── WebSocketTimeout            an operation ran out of time (also a TimeoutError)
    │   └── OpenTimeout             TCP + TLS + handshake exceeded ``open_timeout``
    ├── InvalidHandshake            the HTTP upgrade failed
    │   ├── InvalidStatus           the server answered with a status other than 101
    │   ├── InvalidHeader           a header is missing or has a bad value
    │   └── NegotiationError        subprotocol / extension negotiation failed
    ├── OutboxFull                  a Client's outbox is full (overflow policy "raise")
    ├── ProtocolError               a violation of RFC 6455
    │   ├── LocalProtocolError      our caller asked for something the RFC forbids
    │   └── RemoteProtocolError     the peer broke the RFC (carries the close code)
    │       └── PayloadTooBig       a message exceeded ``max_message_size`` (1009)
    ├── ConnectionClosed            the connection is closed (carries code and reason)
    │   ├── ConnectionClosedOK      closed with 1000 or 1001
    │   └── ConnectionClosedError   closed with any other code, or without a close frame
    └── MissingDependency           an optional extra is not installed (also an ImportError)
"""

from __future__ import annotations

from typing import Any, Optional

__all__ = [
    "WebSocketError",
    "InvalidURI",
    "ConnectError",
    "HostNotFound",
    "ConnectionRefused",
    "ProxyError",
    "TLSError",
    "RedisUnavailable",
    "OutboxFull",
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
]


class WebSocketError(Exception):
    """Base class of every exception raised by simplews."""


class InvalidURI(WebSocketError, ValueError):
    """A WebSocket URL is malformed or uses an unsupported scheme."""


class ConnectError(WebSocketError, OSError):
    """The transport (TCP, proxy or TLS) to the server could not be opened."""


class HostNotFound(ConnectError):
    """The host name could not be resolved."""


class ConnectionRefused(ConnectError):
    """The server refused the TCP connection."""


class ProxyError(ConnectError):
    """The HTTP proxy refused or failed the CONNECT request."""


class TLSError(ConnectError):
    """The TLS handshake failed, for example on certificate verification."""


class RedisUnavailable(ConnectError):
    """Redis could not be reached (or refused us) when a :class:`~simplews.RedisBroadcast` started.

    The message names the URL with any password masked. Later outages raise nothing:
    they are logged, counted and recovered from.
    """


class WebSocketTimeout(WebSocketError, TimeoutError):
    """An operation did not complete within its timeout."""


class OpenTimeout(WebSocketTimeout):
    """Opening the connection (TCP, TLS and handshake) exceeded ``open_timeout``."""


class InvalidHandshake(WebSocketError):
    """The opening handshake failed.

    On the server side ``status`` is the HTTP status answered to the client.
    """

    status: int = 400

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class InvalidStatus(InvalidHandshake):
    """The server answered the upgrade with a status other than 101.

    ``response`` holds the parsed response (status, headers, body).
    """

    def __init__(self, message: str, response: Any = None) -> None:
        super().__init__(message)
        self.response = response
        self.status = getattr(response, "status", 0)


class InvalidHeader(InvalidHandshake):
    """A handshake header is missing, duplicated or invalid."""


class NegotiationError(InvalidHandshake):
    """Subprotocol or extension negotiation failed."""


class ProtocolError(WebSocketError):
    """A violation of RFC 6455."""


class LocalProtocolError(ProtocolError):
    """Our caller asked for something the protocol forbids (e.g. a 126-byte ping)."""


class RemoteProtocolError(ProtocolError):
    """The peer violated the protocol; ``code`` is the close code we answer with."""

    def __init__(self, message: str, code: int = 1002) -> None:
        super().__init__(message)
        self.code = code
        self.reason = message


class PayloadTooBig(RemoteProtocolError):
    """An incoming message or frame exceeded the configured size limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message, 1009)


class ConnectionClosed(WebSocketError):
    """The connection is closed.

    ``code`` and ``reason`` are those of the close frame received from the peer
    (``1006`` and ``""`` when the connection dropped without one); ``sent_code``
    is the code we sent, if any.
    """

    def __init__(self, code: int, reason: str, *, sent_code: Optional[int] = None) -> None:
        self.code = code
        self.reason = reason
        self.sent_code = sent_code
        text = f"connection closed: {code}"
        if reason:
            text += f" ({reason})"
        super().__init__(text)


class ConnectionClosedOK(ConnectionClosed):
    """The connection closed normally (1000 or 1001)."""


class ConnectionClosedError(ConnectionClosed):
    """The connection closed with an error code or without a close handshake."""


class MissingDependency(WebSocketError, ImportError):
    """An optional dependency is not installed; the message names the extra that brings it.

    For example ``pip install 'simplews[redis]'`` for :class:`~simplews.RedisBroadcast`.
    """
class OutboxFull(WebSocketError):
    """A :class:`~simplews.Client`'s outbox is full and its overflow policy is ``"raise"``: the message was not kept."""
