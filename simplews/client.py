"""The client: :func:`connect` for a blocking connection, :class:`Client` for callbacks."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import logging
import os
import random
import socket
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union
from urllib.parse import unquote, urljoin, urlsplit

from . import handshake
from .connection import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    Connection,
)
from .exceptions import (
    ConnectError,
    ConnectionRefused,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    NegotiationError,
    OpenTimeout,
    ProxyError,
    WebSocketError,
)
from .handlers import OnClose, OnError, OnMessage, OnOpen, resolve_handler, run_connection
from .handshake import HeaderLike, Headers, redact_url
from .protocol import DEFAULT_FRAME_SIZE, DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, Protocol
from .transport import Cancel, default_ssl_context, is_tls_socket, open_tcp, read_head, remaining, wrap_tls

if TYPE_CHECKING:  # pragma: no cover
    import ssl  # imported on first TLS use (transport.py): keeps ``import simplews`` fast

    from .deflate import DeflateConfig

__all__ = ["connect", "Client", "WebSocketURI", "parse_uri"]

logger = logging.getLogger("simplews")

DEFAULT_OPEN_TIMEOUT = 10.0
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
#: user-set headers that never follow a redirect to another origin
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
#: a connection that lived this long resets the reconnect backoff
_STABLE_AFTER = 10.0
#: the shortest wait between reconnection attempts, whatever ``reconnect_delay`` says
_MIN_DELAY = 0.01


def _user_agent() -> str:
    from . import __version__

    return f"simplews/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"


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


# --- proxies ----------------------------------------------------------------------------


def _proxy_from_env(uri: WebSocketURI) -> Optional[str]:
    """The proxy URL the environment sets for ``uri``, honouring NO_PROXY (as curl does)."""

    def env(name: str) -> Optional[str]:
        return os.environ.get(name.lower()) or os.environ.get(name.upper()) or None

    proxy = env("https_proxy") if uri.secure else env("http_proxy")
    proxy = proxy or env("all_proxy")
    if not proxy:
        return None
    if _no_proxy_matches(env("no_proxy") or "", uri.host, uri.port):
        return None
    return proxy


def _no_proxy_matches(no_proxy: str, host: str, port: int) -> bool:
    """Whether a NO_PROXY list (names, ``.domains``, IPs, CIDRs, ``[v6]``, ``:port``, ``*``) covers the host."""
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if not entry:
            continue
        if entry == "*":
            return True
        name, want_port = entry, ""
        if entry.startswith("["):  # [v6] or [v6]:port
            name, _, rest = entry[1:].partition("]")
            want_port = rest[1:] if rest.startswith(":") else ""
        elif entry.count(":") == 1:  # name:port or v4:port (a bare v6 address has several colons)
            name, _, want_port = entry.partition(":")
        name = name.lstrip("*").lstrip(".").rstrip(".")
        if want_port and want_port != str(port):
            continue
        if host == name or host.endswith("." + name):
            return True
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(name, strict=False):
                return True
        except ValueError:
            pass
    return False


def _connect_via_proxy(
    proxy: str, uri: WebSocketURI, deadline: Optional[float], cancel: Optional[Cancel] = None
) -> socket.socket:
    """Open a tunnel to ``uri`` through an HTTP CONNECT proxy."""
    try:
        parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        pport = parts.port or 8080
    except ValueError:
        raise InvalidURI(f"invalid proxy URL {redact_url(proxy)!r}: bad host or port") from None
    if parts.scheme not in ("http", "") or not parts.hostname:
        raise InvalidURI(f"unsupported proxy {parts.scheme}:// (use http://, socks5h://, socks5://, socks4a:// or socks4://)")
    try:
        sock = open_tcp(parts.hostname, pport, deadline, cancel)
    except ConnectError as exc:  # same class, but say it was the proxy that failed
        raise type(exc)(f"proxy {parts.hostname}:{pport}: {exc}") from exc
    try:
        target = uri.host_header if ":" in uri.host_header.rsplit("]", 1)[-1] else f"{uri.host_header}:{uri.port}"
        headers = Headers([("Host", target), ("User-Agent", _user_agent())])
        if parts.username:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers.add("Proxy-Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
        sock.sendall(f"CONNECT {target} HTTP/1.1\r\n{headers.serialize()}\r\n".encode("latin-1"))
        try:
            head, extra = read_head(sock, 64 * 1024, deadline)
            response = handshake.parse_response(head)
        except (InvalidHandshake, OSError) as exc:
            raise ProxyError(f"proxy {parts.hostname}:{pport} failed the CONNECT: {exc}") from exc
        if response.status // 100 != 2:
            hint = {407: " (proxy authentication required)", 401: " (proxy authentication failed)"}.get(response.status, "")
            raise ProxyError(
                f"proxy {parts.hostname}:{pport} refused CONNECT to {target}: "
                f"HTTP {response.status} {response.reason}{hint}".replace("  ", " ")
            )
        if extra:
            raise ProxyError("proxy sent data before the tunnel was open")
        return sock
    except BaseException:
        sock.close()
        raise


# --- connect ----------------------------------------------------------------------------


def connect(
    url: str,
    *,
    subprotocols: Optional[Sequence[str]] = None,
    origin: Optional[str] = None,
    headers: Optional[HeaderLike] = None,
    user_agent: Optional[str] = "default",
    compression: Union[str, DeflateConfig, None] = "deflate",
    open_timeout: Optional[float] = DEFAULT_OPEN_TIMEOUT,
    close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
    ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
    ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
    send_timeout: Optional[float] = None,
    max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
    max_fragments: Optional[int] = DEFAULT_MAX_FRAGMENTS,
    frame_size: Optional[int] = DEFAULT_FRAME_SIZE,
    max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
    max_header_size: Optional[int] = handshake.DEFAULT_MAX_HEADER_SIZE,
    ssl_context: Optional[ssl.SSLContext] = None,
    server_hostname: Optional[str] = None,
    proxy: Optional[str] = "auto",
    unix_socket: Optional[str] = None,
    sock: Optional[socket.socket] = None,
    max_redirects: int = MAX_REDIRECTS,
    _cancel: Optional[Cancel] = None,
) -> Connection:
    """Open a WebSocket connection and return it (also a context manager).

    Transport: ``ssl_context`` overrides the default certificate checks (certifi's
    CA bundle); ``proxy`` is an ``http://[user:pass@]host:port`` CONNECT proxy or a
    ``socks5h://``, ``socks5://``, ``socks4a://`` or ``socks4://`` one (extra
    ``simplews[socks]``; the ``h`` and ``a`` forms let the proxy resolve the host name),
    ``"auto"`` to take it from ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY``,
    or ``None`` for none; ``unix_socket`` or ``sock`` replace TCP.
    Timeouts (seconds, ``None`` for none): ``open_timeout`` covers TCP, TLS and
    the handshake; ``close_timeout`` bounds the close handshake; ``send_timeout``
    bounds one blocked write (then the connection is aborted).
    Keepalive: a ping every ``ping_interval``; no pong within ``ping_timeout``
    closes the connection with 1011. Limits: ``max_message_size`` (incoming,
    after decompression), ``max_fragments`` (frames per incoming message),
    ``frame_size`` (outgoing fragmentation),
    ``max_queue`` (messages read ahead while nobody calls ``recv()``).
    ``compression="deflate"`` offers permessage-deflate; ``None`` turns it off; a
    :class:`~simplews.DeflateConfig` sets its parameters, memory use and threshold.
    Redirects (301, 302, 303, 307, 308) are followed up to ``max_redirects``
    times (``0``: raise the :class:`InvalidStatus`); ``wss`` to ``ws`` is refused.
    From the first hop to another origin (scheme, host or port) on, the
    ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` of ``headers`` are no
    longer sent; the URL's credentials follow to the same host and port only;
    ``proxy`` credentials go to the proxy on every hop.
    """
    uri = parse_uri(url)
    headers = Headers(headers) if headers is not None else None  # read once: an iterator may not be replayed
    from .deflate import resolve_config

    compression = resolve_config(compression, is_client=True)
    deadline = None if open_timeout is None else time.monotonic() + open_timeout
    for _ in range(max_redirects + 1):
        try:
            return _open(
                uri,
                deadline,
                subprotocols=subprotocols,
                origin=origin,
                headers=headers,
                user_agent=_user_agent() if user_agent == "default" else user_agent,
                compression=compression,
                close_timeout=close_timeout,
                ping_interval=ping_interval,
                ping_timeout=ping_timeout,
                send_timeout=send_timeout,
                max_message_size=max_message_size,
                max_fragments=max_fragments,
                frame_size=frame_size,
                max_queue=max_queue,
                max_header_size=max_header_size,
                ssl_context=ssl_context,
                server_hostname=server_hostname,
                proxy=proxy,
                unix_socket=unix_socket,
                sock=sock,
                cancel=_cancel,
            )
        except InvalidStatus as exc:
            location = exc.response.headers.get("Location") if exc.status in _REDIRECTS else None
            if location is None or not max_redirects or sock is not None or unix_socket is not None:
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
            logger.info("following redirect %d to %s", exc.status, redact_url(str(new)))
            uri = new
    raise InvalidHandshake(f"too many redirects (more than {max_redirects})")


def _open(uri: WebSocketURI, deadline: Optional[float], **opts: Any) -> Connection:
    """Open the transport and run the handshake for one URL (no redirects)."""
    sock: Optional[socket.socket] = opts["sock"]
    if sock is None:
        if opts["unix_socket"] is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                if opts["cancel"] is not None:
                    opts["cancel"].track(sock)
                sock.settimeout(remaining(deadline))
                sock.connect(opts["unix_socket"])
            except socket.timeout as exc:
                sock.close()
                raise OpenTimeout("timed out connecting to the Unix socket") from exc
            except ConnectionRefusedError as exc:
                sock.close()
                raise ConnectionRefused(f"connection refused by Unix socket {opts['unix_socket']}") from exc
            except OSError as exc:
                sock.close()
                raise ConnectError(f"cannot connect to Unix socket {opts['unix_socket']}: {exc.strerror or exc}") from exc
        else:
            proxy = opts["proxy"]
            if proxy == "auto":
                proxy = _proxy_from_env(uri)
            if proxy and proxy.lower().startswith("socks"):
                from .socks import open_socks_tunnel  # imported on first use, like python-socks itself

                sock = open_socks_tunnel(proxy, uri.host, uri.port, deadline, opts["cancel"])
            elif proxy:
                sock = _connect_via_proxy(proxy, uri, deadline, opts["cancel"])
            else:
                sock = open_tcp(uri.host, uri.port, deadline, opts["cancel"])
    try:
        if uri.secure and not is_tls_socket(sock):
            context = opts["ssl_context"] or default_ssl_context()
            sock = wrap_tls(sock, context, opts["server_hostname"] or uri.host, deadline, opts["cancel"])
        return _handshake(sock, uri, deadline, opts)
    except BaseException:
        sock.close()
        raise


def _handshake(sock: socket.socket, uri: WebSocketURI, deadline: Optional[float], opts: Any) -> Connection:
    """Run the opening handshake on an open transport and build the connection."""
    extra = Headers(opts["headers"]) if opts["headers"] is not None else Headers()
    if uri.username is not None and "Authorization" not in extra:
        cred = f"{uri.username}:{uri.password or ''}".encode()
        extra.add("Authorization", "Basic " + base64.b64encode(cred).decode("ascii"))
    deflate_config = opts["compression"]  # a DeflateConfig checked by connect(), or None
    offer = None
    if deflate_config is not None:
        from . import deflate

        offer = deflate.client_offer(deflate_config)
    key = handshake.generate_key()
    request = handshake.build_request(
        uri.host_header,
        uri.resource,
        key,
        subprotocols=opts["subprotocols"],
        extensions=offer,
        origin=opts["origin"],
        user_agent=None if "User-Agent" in extra else opts["user_agent"],
        extra_headers=extra,
    )
    try:
        sock.settimeout(remaining(deadline))
        sock.sendall(request)
        head, leftover = read_head(sock, opts["max_header_size"], deadline)
    except socket.timeout as exc:
        raise OpenTimeout("timed out during the WebSocket handshake") from exc
    except WebSocketError:
        raise
    except OSError as exc:  # e.g. a reset: still an error of ours, not a bare OSError
        raise ConnectError(f"connection lost during the WebSocket handshake: {exc}") from exc
    response = handshake.parse_response(head)
    if response.status != 101:
        response.body = _read_body(sock, response, leftover, deadline)
    subprotocol = handshake.check_response(response, key, subprotocols=opts["subprotocols"])
    extension = None
    ext_values = response.headers.get_all("Sec-WebSocket-Extensions")
    if ext_values:
        if deflate_config is None:
            raise NegotiationError("server accepted an extension that was not offered")
        from . import deflate

        extension = deflate.client_accept(ext_values, deflate_config)
    sock.settimeout(None)
    protocol = Protocol(
        True,
        max_message_size=opts["max_message_size"],
        max_fragments=opts["max_fragments"],
        frame_size=opts["frame_size"],
        extension=extension,
    )
    try:
        req = handshake.parse_request(request)  # what we sent, readable as ws.request.headers
    except WebSocketError:
        req = handshake.Request(uri.resource, handshake.Headers(), remote_address=None)
    conn = Connection(
        sock,
        protocol,
        request=req,
        response=response,
        subprotocol=subprotocol,
        leftover=leftover,
        ping_interval=opts["ping_interval"],
        ping_timeout=opts["ping_timeout"],
        close_timeout=opts["close_timeout"],
        send_timeout=opts["send_timeout"],
        max_queue=opts["max_queue"],
    )
    logger.info("connected to %s", redact_url(str(uri)))
    return conn


def _read_body(sock: socket.socket, response: handshake.Response, data: bytes, deadline: Optional[float]) -> bytes:
    """Read a short error body after a non-101 response (best effort, bounded)."""
    length = response.headers.get("Content-Length")
    try:
        want = min(int(length), 64 * 1024) if length is not None else 0
    except ValueError:
        want = 0
    buf = bytearray(data)
    try:
        while len(buf) < want:
            sock.settimeout(remaining(deadline))
            chunk = sock.recv(want - len(buf))
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
    other keyword goes to :func:`connect`. Callbacks run on the client's thread:
    ``on_open(ws)`` for every new connection, ``on_message(ws, message)``,
    ``on_close(ws, code, reason)`` once per connection, and
    ``on_error(ws, exc)`` (``ws`` is ``None`` when connecting failed).

    With ``reconnect=True`` a lost connection is reopened after a delay that
    starts at ``reconnect_delay`` and doubles up to ``reconnect_max_delay``,
    with random jitter. A 4xx handshake rejection stops the retries unless
    ``retry_on_rejection=True``; ``max_retries`` bounds consecutive failures.
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
        **connect_options: Any,
    ) -> None:
        parse_uri(url)
        if "compression" in connect_options:
            from .deflate import resolve_config

            resolve_config(connect_options["compression"], is_client=True)  # fail here, not at each reconnect
        self.url = url
        self._handler_factory = resolve_handler(
            handler, on_open=on_open, on_message=on_message, on_close=on_close, on_error=on_error
        )
        self.reconnect = reconnect
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.retry_on_rejection = retry_on_rejection
        self.max_retries = max_retries
        self.connect_options = connect_options
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
        """Send on the current connection; raise :class:`ConnectionClosed` if there is none."""
        ws = self._ws
        if ws is None:
            from .exceptions import ConnectionClosedError

            raise ConnectionClosedError(1006, "not connected")
        ws.send(message, **kwargs)

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
                ws = connect(self.url, **self.connect_options, _cancel=cancel)
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
                run_connection(ws, handler)
                with self._lock:
                    self._ws = None
                if not self.reconnect:
                    return
                if time.monotonic() - started >= _STABLE_AFTER:
                    delay = self.reconnect_delay
            if self._stop.is_set():
                return
            # jitter spreads a fleet's reconnects; the floor keeps a zero delay from spinning
            wait = max(_MIN_DELAY, min(delay * random.uniform(0.5, 1.5), self.reconnect_max_delay))
            logger.info("reconnecting in %.2f s", wait)
            if self._stop.wait(wait):
                return
            delay = min(max(delay, _MIN_DELAY) * 2, self.reconnect_max_delay)

    def _report_connect_error(self, handler: Any, exc: BaseException) -> None:
        """Tell ``on_error`` (or the log) that connecting failed."""
        if handler.on_error is not None:
            try:
                handler.on_error(None, exc)
            except Exception:
                logger.exception("on_error raised")
        else:
            logger.warning("connecting to %s failed: %s", redact_url(str(parse_uri(self.url))), exc)

    def _should_retry(self, exc: BaseException, failures: int) -> bool:
        """Whether to try connecting again after ``exc``."""
        if not self.reconnect or self._stop.is_set():
            return False
        if isinstance(exc, (InvalidURI, ValueError, TypeError)):
            return False
        if isinstance(exc, InvalidStatus) and 400 <= exc.status < 500 and not self.retry_on_rejection:
            logger.warning("server rejected the handshake with HTTP %d; not retrying", exc.status)
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

    def stop(self, timeout: Optional[float] = None) -> None:
        """Stop reconnecting, close the connection (1000) and join the client thread."""
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

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

