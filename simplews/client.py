"""The client: :func:`connect` for a blocking connection, :class:`Client` for callbacks."""

from __future__ import annotations

import dataclasses
import logging
import random
import threading
import time
from typing import Any, List, Optional, Union
from urllib.parse import unquote, urljoin, urlsplit

from . import handshake
from .connection import Connection
from .exceptions import (
    ConnectError,
    ConnectionClosed,
    ConnectionClosedError,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    OpenTimeout,
    WebSocketError,
    WebSocketTimeout,
)
from .handlers import Handler, OnClose, OnError, OnMessage, OnOpen, _report, resolve_handler, run_connection
from .handshake import Headers, redact_url
from .options import ClientOptions, new_protocol
from .outbox import Message, Outbox
from .stream import Stream, read_head
from .transport import Cancel, open_stream
from .upgrade import ClientHandshake

__all__ = ["connect", "Client", "WebSocketURI", "parse_uri"]

logger = logging.getLogger("simplews")

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: user-set headers that never follow a redirect to another origin
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: a connection that lived this long resets the reconnect backoff
_STABLE_AFTER = 10.0
#: the shortest wait between reconnection attempts, whatever ``reconnect_delay`` says
_MIN_DELAY = 0.01


@dataclasses.dataclass(frozen=True)
class WebSocketURI:
    """A parsed ``ws://`` or ``wss://`` URL."""

    secure: bool
    host: str
    port: int
    resource: str = "/"
    username: Optional[str] = None
    password: Optional[str] = dataclasses.field(default=None, repr=False)

    @property
    def host_header(self) -> str:
        """The Host header value: brackets for IPv6, port only when not the default."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.secure else 80
        return host if self.port == default else f"{host}:{self.port}"

    def __str__(self) -> str:
        scheme = "wss" if self.secure else "ws"
        return f"{scheme}://{self.host_header}{self.resource}"


def parse_uri(url: str) -> WebSocketURI:
    """Parse and check a WebSocket URL; raise :class:`InvalidURI` before any I/O."""
    if not isinstance(url, str):
        raise InvalidURI(f"URL must be a string, not {type(url).__name__}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        detail = exc if "@" not in url else "bad host or port"  # the error may quote the password
        raise InvalidURI(f"{shown!r} is not a valid URL: {detail}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss"):
        raise InvalidURI(f"{shown!r} is not a WebSocket URL (use ws:// or wss://)")
    if parts.fragment:
        raise InvalidURI(f"{shown!r} has a fragment, which WebSocket URLs may not have")
    host = parts.hostname
    if not host:
        raise InvalidURI(f"{shown!r} has no host")
    if any(c in url for c in "\r\n\x00 \t"):
        raise InvalidURI("URL contains whitespace or control characters")
    if port == 0:
        raise InvalidURI(f"{shown!r} has port 0")
    secure = scheme == "wss"
    resource = parts.path or "/"
    if parts.query:
        resource += "?" + parts.query
    return WebSocketURI(
        secure,
        host,
        port if port is not None else (443 if secure else 80),
        resource,
        unquote(parts.username) if parts.username else None,
        unquote(parts.password) if parts.password is not None else None,
    )


# --- connect ----------------------------------------------------------------------------


def connect(url: str, *, options: Optional[ClientOptions] = None, _cancel: Optional[Cancel] = None, **kwargs: Any) -> Connection:
    """Open a WebSocket connection and return it (also a context manager).

    The keywords are those of :class:`~simplews.ClientOptions` (handshake,
    transport, ``open_timeout``, redirects) and
    :class:`~simplews.ConnectionOptions` (limits, timeouts, keepalive,
    compression); an unknown one is a ``TypeError``. ``options=`` gives them
    as one :class:`~simplews.ClientOptions` (keywords then override it).
    Redirects (301, 302, 303, 307, 308) are followed up to ``max_redirects``
    times (``0``: raise the :class:`InvalidStatus`); ``wss`` to ``ws`` is refused.
    From the first hop to another origin (scheme, host or port) on, the
    ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` of ``headers`` are no
    longer sent; the URL's credentials follow to the same host and port only;
    ``proxy`` credentials go to the proxy on every hop.
    """
    return _connect(parse_uri(url), ClientOptions.build("connect", kwargs, options), _cancel)


def _connect(uri: WebSocketURI, opts: ClientOptions, cancel: Optional[Cancel]) -> Connection:
    """Open a connection to ``uri``, following redirects."""
    given = opts.headers() if callable(opts.headers) else opts.headers  # a function: once per attempt, not per hop
    headers = Headers(given) if given is not None else None  # read once: an iterator may not be replayed
    log = opts.logger or logger
    deadline = None if opts.open_timeout is None else time.monotonic() + opts.open_timeout
    for _ in range(opts.max_redirects + 1):
        try:
            return _open(uri, opts, headers, deadline, cancel)
        except InvalidStatus as exc:
            location = exc.response.headers.get("Location") if exc.status in _REDIRECTS else None
            if location is None or not opts.max_redirects or opts.sock is not None or opts.unix_socket is not None:
                raise
            target = urljoin(str(uri).replace("ws", "http", 1), location)
            if target.startswith("http"):
                target = "ws" + target[4:]
            new = parse_uri(target)
            if uri.secure and not new.secure:
                shown = f"from {redact_url(str(uri))} to insecure {redact_url(str(new))}"
                raise InvalidHandshake(f"refusing redirect {exc.status} {shown}") from exc
            if headers is not None and (new.secure, new.host, new.port) != (uri.secure, uri.host, uri.port):
                headers = Headers([(k, v) for k, v in headers.items() if k.lower() not in _CREDENTIAL_HEADERS])
            if new.username is None and (new.host, new.port) == (uri.host, uri.port):
                # URL credentials follow a redirect on the same server only, as curl does
                new = dataclasses.replace(new, username=uri.username, password=uri.password)
            log.info("following redirect %d to %s", exc.status, redact_url(str(new)))
            uri = new
    raise InvalidHandshake(f"too many redirects (more than {opts.max_redirects})")


def _open(
    uri: WebSocketURI, opts: ClientOptions, headers: Optional[Headers], deadline: Optional[float], cancel: Optional[Cancel]
) -> Connection:
    """Open the transport and run the handshake for one URL (no redirects)."""
    stream = open_stream(uri, opts, deadline, cancel)
    try:
        auth = (uri.username, uri.password) if uri.username is not None else None
        attempt = ClientHandshake(uri.host_header, uri.resource, opts, headers, auth)
        try:
            stream.write([attempt.request], deadline)
            head, leftover = read_head(stream, opts.max_header_size, deadline)
        except WebSocketTimeout as exc:
            raise OpenTimeout("timed out during the WebSocket handshake") from exc
        except OSError as exc:  # e.g. a reset: still an error of ours, not a bare OSError
            raise ConnectError(f"connection lost during the WebSocket handshake: {exc}") from exc
        except InvalidHandshake as exc:
            raise InvalidHandshake(f"{exc} (server {uri.host_header})") from exc
        response = handshake.parse_response(head)
        if response.status != 101:
            response.body = _read_body(stream, response, leftover, deadline)
        subprotocol, extension = attempt.check(response)
        protocol = new_protocol(opts, True, extension)
        conn = Connection(
            stream, protocol, opts.connection_options(), request=attempt.sent_request(), response=response, subprotocol=subprotocol
        )
        conn._open(leftover=leftover)
    except BaseException:
        stream.shutdown()
        stream.close()
        raise
    conn.logger.info("connected to %s", redact_url(str(uri)))
    return conn


def _read_body(stream: Stream, response: handshake.Response, data: bytes, deadline: Optional[float]) -> bytes:
    """Read a short error body after a non-101 response (best effort, bounded)."""
    length = response.headers.get("Content-Length")
    try:
        want = min(int(length), 64 * 1024) if length is not None else 0
    except ValueError:
        want = 0
    buf = bytearray(data)
    try:
        while len(buf) < want:
            chunk = stream.read(deadline)
            if not chunk:
                break
            buf += chunk
    except (OSError, WebSocketError):
        pass
    return bytes(buf[:want])


# --- callback client ------------------------------------------------------------------------


class Client:
    """A callback-driven client with optional automatic reconnection.

    ``run_forever()`` blocks; ``start()`` runs it in a background (daemon)
    thread; ``stop()`` closes the connection and waits for that thread. Every
    other keyword is an option of :func:`connect` (checked here: an unknown
    one is a ``TypeError`` at this call). Callbacks run on the client's thread:
    ``on_open(ws)`` for every new connection, ``on_message(ws, message)``,
    ``on_close(ws, code, reason)`` once per connection, and
    ``on_error(ws, exc)`` (``ws`` is ``None`` when connecting failed).

    With ``reconnect=True`` a lost connection is reopened after a delay that
    starts at ``reconnect_delay`` and doubles up to ``reconnect_max_delay``,
    with random jitter. A 4xx handshake rejection stops the retries unless
    ``retry_on_rejection=True``; ``max_retries`` bounds consecutive failures.
    ``on_reconnect(ws)`` runs before ``on_open`` for every connection that
    replaces an earlier one. ``headers`` given as a function is called once
    per connection attempt: fresh tokens for every reconnection.

    With an :class:`~simplews.Outbox`, :meth:`send` keeps what it is given
    while there is no connection (or the connection it was handed to turned out
    closed) and the next connection sends it, in order, once its ``on_open``
    has returned: what ``on_open`` sends (authentication, say) goes first, and
    what other threads send meanwhile queues behind. :meth:`stop` returns the
    messages never sent. Delivery is at-most-once: a message sent just before
    the link died may be lost (or, if the application resends it, duplicated).
    """

    def __init__(
        self,
        url: str,
        handler: Any = None,
        *,
        on_open: Optional[OnOpen] = None,
        on_message: Optional[OnMessage] = None,
        on_close: Optional[OnClose] = None,
        on_error: Optional[OnError] = None,
        reconnect: bool = False,
        reconnect_delay: float = 1.0,
        reconnect_max_delay: float = 60.0,
        retry_on_rejection: bool = False,
        max_retries: Optional[int] = None,
        on_reconnect: Optional[OnOpen] = None,
        outbox: Optional[Outbox] = None,
        options: Optional[ClientOptions] = None,
        **kwargs: Any,
    ) -> None:
        self._uri = parse_uri(url)
        #: the :class:`~simplews.ClientOptions` of every connection attempt
        self.options = ClientOptions.build("Client", kwargs, options)
        #: where the client logs (its connections log through an adapter of it)
        self.logger: Any = self.options.logger or logger
        self.url = url
        self._handler_factory = resolve_handler(
            handler, on_open=on_open, on_message=on_message, on_close=on_close, on_error=on_error
        )
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.retry_on_rejection = retry_on_rejection
        self.max_retries = max_retries
        self.on_reconnect = on_reconnect
        #: the :class:`~simplews.Outbox` of :meth:`send`, if any
        self.outbox = outbox
        self._flowing = False  # the outbox is drained: send() may go straight to the connection
        self._opening: Optional[threading.Thread] = None  # the thread running on_open, whose sends go first
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._ws: Optional[Connection] = None
        self._cancel: Optional[Cancel] = None
        #: how many connections were opened so far
        self.connections_opened = 0

    @property
    def ws(self) -> Optional[Connection]:
        """The current connection, or ``None`` between connections."""
        return self._ws

    def send(self, message: Union[str, bytes], **kwargs: Any) -> None:
        """Send on the current connection, or keep ``message`` in the outbox.

        Without an outbox, raise :class:`ConnectionClosed` if there is no
        connection. With one, the message is queued unless the connection is
        open and the outbox drained (or this is ``on_open`` sending); the
        outbox's overflow policy applies (:class:`~simplews.OutboxFull`).
        """
        with self._lock:
            ws, outbox = self._ws, self.outbox
            if outbox is not None and (ws is None or not (self._flowing or self._opening is threading.current_thread())):
                outbox.put(message, **kwargs)
                return
        if ws is None:
            raise ConnectionClosedError(1006, "not connected")
        try:
            ws.send(message, **kwargs)
        except ConnectionClosed:
            if outbox is None:
                raise
            outbox.put(message, **kwargs)  # the connection did not take it: the next one will

    def run_forever(self) -> None:
        """Connect and dispatch callbacks until ``stop()`` (or the end, without reconnect)."""
        if threading.current_thread() is not self._thread:  # start() cleared it; keep a stop() that came since
            self._stop.clear()
        delay = self.reconnect_delay
        failures = 0
        while not self._stop.is_set():
            handler = self._handler_factory()
            cancel = Cancel()
            with self._lock:
                self._cancel = cancel
            try:
                ws = _connect(self._uri, self.options, cancel)
            except (WebSocketError, OSError) as exc:
                if self._stop.is_set():  # stop() aborted the attempt: not an error to report
                    return
                failures += 1
                self._report_connect_error(handler, exc)
                if not self._should_retry(exc, failures):
                    return
            else:
                failures = 0
                started = time.monotonic()
                with self._lock:
                    self._ws = ws
                    self._cancel = None
                    stopping = self._stop.is_set()
                self.connections_opened += 1
                if stopping:
                    ws.close(1001, "client stopping")
                run_connection(ws, self._opened_first(handler, reconnected=self.connections_opened > 1))
                with self._lock:
                    self._ws = None
                    self._flowing = False
                if not self.reconnect:
                    return
                if time.monotonic() - started >= _STABLE_AFTER:
                    delay = self.reconnect_delay
            if self._stop.is_set():
                return
            # jitter spreads a fleet's reconnects; the floor keeps a zero delay from spinning
            wait = max(_MIN_DELAY, min(delay * random.uniform(0.5, 1.5), self.reconnect_max_delay))
            self.logger.info("reconnecting in %.2f s", wait)
            if self._stop.wait(wait):
                return
            delay = min(max(delay, _MIN_DELAY) * 2, self.reconnect_max_delay)

    def _opened_first(self, handler: Handler, reconnected: bool) -> Handler:
        """``handler`` whose ``on_open`` is preceded by ``on_reconnect`` and followed by draining the outbox."""
        on_open = handler.on_open

        def opened(ws: Connection) -> None:
            if reconnected and self.on_reconnect is not None:
                try:
                    self.on_reconnect(ws)
                except Exception as exc:
                    _report(handler, ws, exc)
            with self._lock:
                self._opening = threading.current_thread()
            try:
                if on_open is not None:
                    on_open(ws)
            finally:
                with self._lock:
                    self._opening = None
                self._drain(ws)

        return dataclasses.replace(handler, on_open=opened)

    def _drain(self, ws: Connection) -> None:
        """Send the outbox's messages in order on ``ws``, until it is empty (then sends go straight) or ``ws`` closes."""
        outbox = self.outbox
        while outbox is not None:
            with self._lock:
                item = outbox.get()
                if item is None:
                    self._flowing = True
                    return
            try:
                ws.send(item[0], **item[1])
            except ConnectionClosed:
                outbox.unget(item[0], **item[1])
                return

    def _report_connect_error(self, handler: Any, exc: BaseException) -> None:
        """Tell ``on_error`` (or the log) that connecting failed."""
        if handler.on_error is not None:
            try:
                handler.on_error(None, exc)
            except Exception:
                self.logger.exception("on_error raised")
        else:
            self.logger.warning("connecting to %s failed: %s", redact_url(str(self._uri)), exc)

    def _should_retry(self, exc: BaseException, failures: int) -> bool:
        """Whether to try connecting again after ``exc``."""
        if not self.reconnect or self._stop.is_set():
            return False
        if isinstance(exc, (InvalidURI, ValueError, TypeError)):
            return False
        if isinstance(exc, InvalidStatus) and 400 <= exc.status < 500 and not self.retry_on_rejection:
            self.logger.warning("server rejected the handshake with HTTP %d; not retrying", exc.status)
            return False
        return self.max_retries is None or failures <= self.max_retries

    def start(self) -> Client:
        """Run :meth:`run_forever` in a background daemon thread; return at once."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("client already started")
        self._stop.clear()
        self._thread = threading.Thread(target=self.run_forever, name="simplews-client", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: Optional[float] = None) -> List[Message]:
        """Stop reconnecting, close the connection (1000) and join the client thread.

        Return the messages of the outbox never sent, in order (emptying it;
        ``[]`` without an outbox).
        """
        self._stop.set()
        with self._lock:
            ws, cancel = self._ws, self._cancel
        if cancel is not None:
            cancel.cancel()  # wake a connect() blocked on a silent server
        if ws is not None:
            ws.close(1000, "", timeout=timeout)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            end = None if timeout is None else time.monotonic() + timeout
            while thread.is_alive() and (end is None or time.monotonic() < end):
                if cancel is not None:
                    cancel.cancel()  # again: a socket may have started connecting after the first call
                thread.join(0.05 if end is None else max(0.0, min(0.05, end - time.monotonic())))
        return [] if self.outbox is None else self.outbox.clear()

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

