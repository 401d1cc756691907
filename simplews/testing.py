"""Helpers and pytest fixtures for testing code that uses WebSockets.

Installing simplews registers this module as a pytest plugin (entry point
``pytest11``), so these fixtures are available in every test suite:

``ws_server``
    a factory: ``ws_server(on_message=..., **server_options)`` starts a
    :class:`~simplews.Server` on 127.0.0.1, port 0, and shuts it down after
    the test, whatever happened.
``ws_recording_server``
    a started :class:`RecordingServer` that stores every handshake, message
    and ping it receives; ``wait_for_messages(n)``, ``wait_for_json(n)`` and
    ``wait_for_pings(n)`` wait for them.
``ws_client``
    a factory: ``ws_client(server_or_url, **connect_options)`` opens a
    :class:`~simplews.Connection` that is closed after the test.

Example::

    def test_my_client_says_hello(ws_recording_server):
        my_code_that_connects(ws_recording_server.url)
        assert ws_recording_server.wait_for_messages(1) == ["hello"]
        assert ws_recording_server.handshakes[0].headers["X-Token"] == "secret"

The classes work without pytest too (``with RecordingServer() as server:``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable, Iterator, List, Optional, Tuple, Union

from .client import connect
from .connection import Connection
from .exceptions import WebSocketTimeout
from .handshake import Request
from .messages import loads
from .server import Server

try:  # pytest is optional: the classes work without it
    import pytest
except ImportError:  # pragma: no cover
    pytest = None

__all__ = [
    "Received",
    "RecordingServer",
    "ServerFactory",
    "ClientFactory",
    "start_server",
    "ws_server",
    "ws_recording_server",
    "ws_client",
]

Message = Union[str, bytes]


@dataclasses.dataclass(frozen=True)
class Received:
    """One message a :class:`RecordingServer` received, and the connection it came on."""

    connection: Connection
    message: Message


def start_server(handler: Any = None, **options: Any) -> Server:
    """Start a :class:`~simplews.Server` for a test: 127.0.0.1, port 0, unless given."""
    options.setdefault("host", "127.0.0.1")
    options.setdefault("port", 0)
    return Server(handler, **options).start()


class RecordingServer:
    """A server that records every handshake, message and close it sees.

    ``on_message(ws, message)`` (optional) runs after a message is recorded,
    e.g. ``RecordingServer(on_message=lambda ws, m: ws.send(m))`` also echoes.
    Other keywords go to :class:`~simplews.Server`. Use it as a context
    manager or call :meth:`shutdown`. The lists only grow; read them at any
    time, or wait with :meth:`wait_for_messages` and :meth:`wait_for_connections`.
    """

    def __init__(
        self,
        *,
        on_open: Optional[Callable[[Connection], Any]] = None,
        on_message: Optional[Callable[[Connection, Any], Any]] = None,
        **options: Any,
    ) -> None:
        self._cond = threading.Condition()
        self._user_on_open = on_open
        self._user_on_message = on_message
        #: the opening handshake request of every connection, in order
        self.handshakes: List[Request] = []
        #: every message received, with its connection, in arrival order
        self.received: List[Received] = []
        #: ``(connection, code, reason)`` for every connection that closed
        self.closes: List[Tuple[Connection, int, str]] = []
        #: the payload of every ping received (each was answered at once), in arrival order
        self.pings: List[bytes] = []
        self.server = start_server(
            on_open=self._on_open, on_message=self._on_message, on_close=self._on_close, on_ping=self._on_ping, **options
        )

    # --- callbacks (run on the connections' threads) ----------------------------------------

    def _on_open(self, ws: Connection) -> None:
        with self._cond:
            if ws.request is not None:
                self.handshakes.append(ws.request)
            self._cond.notify_all()
        if self._user_on_open is not None:
            self._user_on_open(ws)

    def _on_message(self, ws: Connection, message: Message) -> None:
        with self._cond:
            self.received.append(Received(ws, message))
            self._cond.notify_all()
        if self._user_on_message is not None:
            self._user_on_message(ws, message)

    def _on_ping(self, ws: Connection, payload: bytes) -> None:
        with self._cond:
            self.pings.append(payload)
            self._cond.notify_all()

    def _on_close(self, ws: Connection, code: int, reason: str) -> None:
        with self._cond:
            self.closes.append((ws, code, reason))
            self._cond.notify_all()

    # --- what tests use ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The URL to connect to, e.g. ``ws://127.0.0.1:54321/``."""
        return self.server.url

    @property
    def messages(self) -> List[Message]:
        """Every message received so far, in arrival order."""
        with self._cond:
            return [r.message for r in self.received]

    def _wait(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise WebSocketTimeout(f"timed out after {timeout} s waiting for {what}")
                self._cond.wait(left)

    def wait_for_messages(self, count: int, timeout: float = 10.0) -> List[Message]:
        """Wait until at least ``count`` messages arrived; return the first ``count``.

        Raises :class:`~simplews.WebSocketTimeout` (with what did arrive) after ``timeout``.
        """
        try:
            self._wait(lambda: len(self.received) >= count, timeout, f"{count} messages")
        except WebSocketTimeout as exc:
            raise WebSocketTimeout(f"{exc}; received {self.messages!r}") from None
        return self.messages[:count]

    def wait_for_json(self, count: int, timeout: float = 10.0) -> List[Any]:
        """Wait for ``count`` messages and return them decoded as JSON (:class:`~simplews.InvalidMessage` if one is not)."""
        return [loads(message) for message in self.wait_for_messages(count, timeout)]

    def wait_for_pings(self, count: int, timeout: float = 10.0) -> List[bytes]:
        """Wait until ``count`` pings arrived; return their payloads."""
        self._wait(lambda: len(self.pings) >= count, timeout, f"{count} pings")
        with self._cond:
            return self.pings[:count]

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> List[Request]:
        """Wait until ``count`` clients completed the handshake; return their requests."""
        self._wait(lambda: len(self.handshakes) >= count, timeout, f"{count} connections")
        with self._cond:
            return self.handshakes[:count]

    def wait_for_closes(self, count: int, timeout: float = 10.0) -> List[Tuple[int, str]]:
        """Wait until ``count`` connections closed; return their ``(code, reason)``."""
        self._wait(lambda: len(self.closes) >= count, timeout, f"{count} closed connections")
        with self._cond:
            return [(code, reason) for _, code, reason in self.closes[:count]]

    def broadcast(self, message: Message, **options: Any) -> int:
        """Send ``message`` to every connected client; return how many got it (see :meth:`simplews.Server.broadcast`)."""
        return self.server.broadcast(message, **options)

    def shutdown(self, *, code: int = 1001, reason: str = "") -> None:
        """Close every connection with ``code`` and ``reason`` and stop the server (joins all its threads)."""
        self.server.shutdown(code=code, reason=reason)

    def __enter__(self) -> RecordingServer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


class ServerFactory:
    """Starts servers (port 0 by default) and shuts them all down in :meth:`close`.

    Calling it is :func:`start_server`; this is what the ``ws_server`` fixture yields.
    """

    def __init__(self) -> None:
        self.servers: List[Server] = []

    def __call__(self, handler: Any = None, **options: Any) -> Server:
        """Start a server with ``handler`` / callbacks and ``options``; return it started."""
        server = start_server(handler, **options)
        self.servers.append(server)
        return server

    def close(self) -> None:
        """Shut down every server started by this factory."""
        while self.servers:
            self.servers.pop().shutdown()


class ClientFactory:
    """Opens client connections and closes them all in :meth:`close`.

    This is what the ``ws_client`` fixture yields.
    """

    def __init__(self) -> None:
        self.connections: List[Connection] = []

    def __call__(self, target: Union[str, Server, RecordingServer], path: str = "", **options: Any) -> Connection:
        """Connect to a URL or a server (optionally at ``path``, e.g. ``"chat?room=1"``)."""
        url = target if isinstance(target, str) else target.url
        if path:
            url = url.rstrip("/") + "/" + path.lstrip("/")
        options.setdefault("open_timeout", 10)
        ws = connect(url, **options)
        self.connections.append(ws)
        return ws

    def close(self) -> None:
        """Close every connection opened by this factory."""
        while self.connections:
            self.connections.pop().close()


if pytest is not None:

    @pytest.fixture
    def ws_server() -> Iterator[ServerFactory]:
        """A factory that starts servers on port 0; every one is shut down after the test."""
        factory = ServerFactory()
        try:
            yield factory
        finally:
            factory.close()

    @pytest.fixture
    def ws_recording_server() -> Iterator[RecordingServer]:
        """A started :class:`RecordingServer` (no replies), shut down after the test."""
        with RecordingServer() as server:
            yield server

    @pytest.fixture
    def ws_client(ws_server: ServerFactory) -> Iterator[ClientFactory]:
        """A factory of client connections, all closed after the test (before ``ws_server``'s servers)."""
        factory = ClientFactory()
        try:
            yield factory
        finally:
            factory.close()
