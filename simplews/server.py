"""The threaded server: an accept thread (:mod:`simplews.listener`) and one thread per connection.

The policy of the upgrade is :class:`simplews.upgrade.ServerPolicy`'s; this
module wires the pieces: bind, admit, run the handshake on the connection's
thread, register the connection before its 101 goes out (so a broadcast made
right after a client's ``connect()`` returned reaches it), run its handler,
and shut everything down.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Union

from . import fanout, handshake
from .connection import Connection
from .exceptions import InvalidHandshake, WebSocketError, WebSocketTimeout
from .forwarded import parse_proxy_v1
from .frames import encode_close
from .handlers import Handler, OnClose, OnControl, OnError, OnFragment, OnMessage, OnOpen, preparer, resolve_handler, run_connection
from .handshake import Request, redact_url
from .hooks import as_hooks
from .listener import Listener
from .options import DEFAULT_THREAD_STACK_SIZE, ServerOptions, new_protocol
from .routing import Router
from .stream import Stream, read_head
from .transport import discard, new_unix_socket
from .upgrade import ServerPolicy

__all__ = ["Server", "serve", "DEFAULT_THREAD_STACK_SIZE"]

logger = logging.getLogger("simplews")

_stack_lock = threading.Lock()


class _Interrupted(BaseException):
    """Internal: SIGINT or SIGTERM arrived in :meth:`Server.serve_forever`."""


class Server:
    """A WebSocket server running one thread per connection.

    Give callbacks (``on_open``, ``on_message``, ``on_close``, ``on_error``), a
    handler object or class with those methods, or a ``handler(ws)`` function.
    Use it as a context manager (starts in the background, shuts down on
    exit), or call :meth:`start` / :meth:`serve_forever` and :meth:`shutdown`.
    Every other keyword is one of :class:`~simplews.ServerOptions` (where to
    listen, TLS, handshake policy, admission limits) or
    :class:`~simplews.ConnectionOptions` (limits, timeouts, keepalive,
    compression); an unknown one is a ``TypeError``. ``options=`` gives them
    as one :class:`~simplews.ServerOptions` (keywords then override it).

    Every connection's :class:`~simplews.Request` (path, ``query``, headers,
    ``remote_address``, chosen ``subprotocol``) is ``ws.request`` in every
    handler style. Before the upgrade, ``process_request(request)`` may answer
    with a :class:`~simplews.Response` or ``(status, headers, body)`` instead
    (health checks, pages, 401/403); if it raises, the client gets a 500. A
    plain GET without ``Upgrade`` gets 426. ``process_response(request,
    response)`` sees every response before it is sent, the 101 included.

    A :class:`~simplews.Router` as ``handler`` picks each connection's handler
    by its path (``ws.request.path_params`` holds the parameters); its 404 and
    400 come after the ``process_request`` hooks, so authentication in a hook
    runs first. Callbacks given beside a router complete every route's handler
    (an ``on_error`` for all routes, for example).

    The server logs to ``logger`` (default ``logging.getLogger("simplews")``);
    each connection through a :class:`logging.LoggerAdapter` of it whose
    ``extra`` is ``{"websocket": connection}``. Handshakes that fail (scanners,
    wrong URLs, refused origins, timeouts) are logged at DEBUG.

    ``broadcast=`` (or :meth:`attach`) joins this server's broadcasts to other
    servers' through a bus such as :class:`~simplews.RedisBroadcast`, which the
    server starts with itself and stops at :meth:`shutdown`.
    """

    def __init__(
        self,
        handler: Any = None,
        *,
        on_open: Optional[OnOpen] = None,
        on_message: Optional[OnMessage] = None,
        on_close: Optional[OnClose] = None,
        on_error: Optional[OnError] = None,
        on_ping: Optional[OnControl] = None,
        on_pong: Optional[OnControl] = None,
        on_fragment: Optional[OnFragment] = None,
        options: Optional[ServerOptions] = None,
        broadcast: Optional[fanout.BroadcastBus] = None,
        **kwargs: Any,
    ) -> None:
        self.options = opts = ServerOptions.build("Server", kwargs, options)
        #: where the server logs (connections log through an adapter of it)
        self.logger: Any = opts.logger or logger
        self._connection_options = opts.connection_options()
        self._policy = ServerPolicy(opts)
        callbacks: Dict[str, Any] = dict(
            on_open=on_open, on_message=on_message, on_close=on_close, on_error=on_error,
            on_ping=on_ping, on_pong=on_pong, on_fragment=on_fragment,
        )
        self._handlers = _Handlers(handler, callbacks)
        #: the :class:`~simplews.Router` given as ``handler``, if any
        self.router = self._handlers.router
        if self.router is not None:
            self._policy.route_hook = self.router.process_request
        self._prepare = preparer(handler, on_ping, on_pong, on_fragment)  # hooks and streaming from the first byte
        self.ssl_context = opts.ssl_context
        self.unix_socket = opts.unix_socket
        self._lock = threading.Lock()
        self._connections: Set[Connection] = set()
        self._pending: Set[socket.socket] = set()  # accepted, in the opening handshake
        self._threads: Set[threading.Thread] = set()
        self._started = False
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._fanout = fanout.Fanout(lambda: self.connections)
        if broadcast is not None:
            self._fanout.attach(broadcast, start=False)
        self.socket = opts.sock if opts.sock is not None else _bind(opts.host, opts.port, opts.unix_socket, opts.backlog)
        if opts.sock is not None:
            opts.sock.listen(opts.backlog)
        self._address: Any = self.socket.getsockname()  # still known after shutdown closed the socket
        self._listener = Listener(
            self.socket,
            spawn=self._spawn,
            full=self._full,
            saturated=self._saturated,
            tls=self.ssl_context is not None,
            server_header=opts.server_header,
            logger=self.logger,
        )

    @property
    def process_request(self) -> Any:
        """The ``process_request`` hooks, tried in order (setting it replaces them)."""
        return self._policy.request_hooks

    @process_request.setter
    def process_request(self, hooks: Any) -> None:
        self._policy.request_hooks = as_hooks(hooks)

    @property
    def port(self) -> int:
        """The TCP port the server listens on (useful with ``port=0``)."""
        addr = self._address
        return addr[1] if isinstance(addr, tuple) else 0

    @property
    def host(self) -> str:
        """The address the server listens on."""
        addr = self._address
        return addr[0] if isinstance(addr, tuple) else str(addr)

    @property
    def url(self) -> str:
        """A URL a client on this machine can connect to, e.g. ``ws://127.0.0.1:54321/``."""
        scheme = "wss" if self.ssl_context is not None else "ws"
        if self.unix_socket is not None:
            return f"{scheme}://localhost/"
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @property
    def connections(self) -> List[Connection]:
        """A snapshot of the open connections."""
        with self._lock:
            return list(self._connections)

    # --- running ------------------------------------------------------------------------

    def start(self) -> Server:
        """Start accepting in a background thread; return at once."""
        with self._lock:
            if self._started:
                return self
            if self._stopping.is_set():
                raise RuntimeError("server was shut down")
            self._fanout.start()  # raises (e.g. RedisUnavailable) before anything is accepted
            self._started = True
            self._listener.start()
        self.logger.info("listening on %s", self.url)
        return self

    def serve_forever(self) -> None:
        """Serve until :meth:`shutdown`, SIGINT or SIGTERM (then shut down gracefully).

        On the main thread SIGINT and SIGTERM are handled for the duration of
        the call: both run :meth:`shutdown` (close with 1001, wait up to
        ``close_timeout``, then force) and make this method return normally.
        """
        self.start()
        previous: Dict[int, Any] = {}
        try:
            if threading.current_thread() is threading.main_thread():
                for sig in (signal.SIGINT, signal.SIGTERM):
                    previous[sig] = signal.signal(sig, self._on_signal)
            while not self._stopping.is_set():
                self._stopping.wait(0.5)
        except (_Interrupted, KeyboardInterrupt):
            self.logger.info("interrupted; shutting down")
        finally:
            self.shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """SIGINT/SIGTERM handler: leave the wait in :meth:`serve_forever` (once)."""
        if not self._stopping.is_set():
            raise _Interrupted(signum)

    def shutdown(self, timeout: Optional[float] = None, *, code: int = 1001, reason: str = "") -> None:
        """Stop accepting, close every connection with ``code`` and ``reason`` and join every thread.

        Waits up to ``timeout`` (default ``close_timeout``) for clients to
        finish the close handshake, then aborts the rest. A client that does
        not read does not delay it: close frames are written without blocking.
        Safe to call twice and from several threads; later calls wait for the
        first to finish.
        """
        encode_close(code, reason)  # a code clients may not be sent raises here, before anything stops
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if not first:
            self._stopped.wait()
            return
        wait = self.options.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + (wait if wait is not None else 3600.0)
        self._listener.stop()
        self._fanout.stop(5.0)  # no broadcast from other servers arrives while connections close
        if self.unix_socket is not None:
            try:
                os.unlink(self.unix_socket)
            except OSError:
                pass
        with self._lock:
            conns, pending = list(self._connections), list(self._pending)
        for sock in pending:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes its thread, which closes it
            except OSError:
                pass
        for conn in conns:
            conn._start_close(code, reason)
        for thread in self._thread_snapshot():
            thread.join(max(0.0, deadline - time.monotonic()))
        for conn in self.connections:
            conn._terminate()
        for thread in self._thread_snapshot():
            thread.join(5.0)
        self._stopped.set()
        self.logger.info("server shut down")

    def _thread_snapshot(self) -> List[threading.Thread]:
        with self._lock:
            return [t for t in self._threads if t is not threading.current_thread()]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def broadcast(
        self,
        message: Union[str, bytes, bytearray, memoryview],
        *,
        room: Optional[str] = None,
        connections: Optional[Iterable[Connection]] = None,
        exclude: Optional[Iterable[Connection]] = None,
        text: Optional[bool] = None,
        timeout: Optional[float] = fanout.DEFAULT_BROADCAST_TIMEOUT,
    ) -> int:
        """Send ``message`` to every open connection, or those in ``room`` or in ``connections``, but ``exclude``.

        Returns how many connections of this server took it, at once: nothing
        here waits for any client. The message is encoded once (per
        compression setting) and written to each client as soon as its socket
        takes it, after a message another thread is sending it, if any. A
        client that takes nothing for ``timeout`` seconds while it is owed a
        broadcast is too slow: it is closed with 1008. One that already owes a
        lot, or is closing, is skipped and counted (:attr:`broadcast_stats`).
        A message that cannot be sent at all (a wrong type, a bad room name)
        raises ``TypeError`` or ``ValueError`` before anything is sent.

        With a bus attached, the message (and ``room``) also goes to every
        other server, whose clients (the room's members there) get it once;
        ``exclude`` applies here only, and a broadcast to explicit
        ``connections`` stays here. Publishing waits for Redis, at most about
        three times its ``timeout``; when it fails the broadcast is dropped
        for the other servers, counted and logged, and this server's clients
        still get it.
        """
        return self._fanout.broadcast(message, room=room, connections=connections, exclude=exclude, text=text, timeout=timeout)

    def attach(self, broadcast: fanout.BroadcastBus) -> None:
        """Broadcast through ``broadcast`` (e.g. a :class:`~simplews.RedisBroadcast`) too; started now if the server runs."""
        with self._lock:
            if self._stopping.is_set():
                raise RuntimeError("server was shut down")
            started = self._started
        self._fanout.attach(broadcast, start=started)

    @property
    def broadcast_stats(self) -> fanout.FanoutStats:
        """What this server's broadcasts did so far (see :class:`~simplews.FanoutStats`)."""
        return self._fanout.stats

    @property
    def rooms(self) -> List[str]:
        """The rooms that have members among this server's connections, sorted."""
        return self._fanout.rooms.names()

    # --- accepting ----------------------------------------------------------------------

    def _live_count(self) -> int:
        with self._lock:
            return len(self._connections) + len(self._pending)

    def _full(self) -> bool:
        """Whether ``max_connections`` is reached (for the listener)."""
        limit = self.options.max_connections
        return limit is not None and self._live_count() >= limit

    def _saturated(self) -> bool:
        """Whether as many handshakes as allowed are in progress (for the listener)."""
        limit = self.options.max_pending_handshakes
        with self._lock:
            return limit is not None and len(self._pending) >= limit

    def _spawn(self, client: socket.socket, addr: Any) -> None:
        """Start the connection's thread with the configured stack size."""
        thread = threading.Thread(target=self._serve_one, args=(client, addr), name=f"simplews-conn-{addr}", daemon=True)
        with self._lock:
            self._pending.add(client)
            self._threads.add(thread)
        size = self.options.thread_stack_size
        with _stack_lock:
            old = threading.stack_size(size) if size else None
            try:
                thread.start()
            finally:
                if old is not None:
                    threading.stack_size(old)

    def _forget_pending(self, sock: socket.socket) -> None:
        """The handshake on ``sock`` is over."""
        limit = self.options.max_pending_handshakes
        with self._lock:
            was_saturated = limit is not None and len(self._pending) >= limit
            self._pending.discard(sock)
        if was_saturated:
            self._listener.wake()  # it stopped accepting at the limit

    def _serve_one(self, client: socket.socket, addr: Any) -> None:
        """A connection's thread: handshake, then the handler until close."""
        try:
            conn = self._handshake(client, addr)
            if conn is None:
                return
            try:
                try:
                    handler = self._handlers.for_connection(conn)
                except Exception:
                    conn.logger.exception("%r: creating the handler failed", conn)
                    conn.close(1011, "internal error")
                    return
                run_connection(conn, handler)
            finally:
                conn._terminate()  # no-op after a clean close; never leave a socket behind
                self._fanout.rooms.leave_all(conn)
                with self._lock:
                    self._connections.discard(conn)
        except Exception:
            self.logger.exception("unexpected error serving %s", addr)
            discard(client)
        finally:
            self._forget_pending(client)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _handshake(self, client: socket.socket, addr: Any) -> Optional[Connection]:
        """Run the server side of the opening handshake; the open connection, or ``None``."""
        opts, policy, log = self.options, self._policy, self.logger
        deadline = None if opts.handshake_timeout is None else time.monotonic() + opts.handshake_timeout
        peer = addr if isinstance(addr, tuple) else None
        stream = Stream(client)
        request: Optional[Request] = None
        try:
            request, leftover = _read_request(stream, opts, policy, peer, deadline)
            answer = policy.answer(request)
            if answer is not None:
                response = policy.finish(request, answer)
                level = logging.INFO if response.status < 400 else logging.DEBUG
                log.log(level, "%s %s -> %d (process_request)", request.method, redact_url(request.path), response.status)
                _answer_and_close(stream, handshake.serialize_response(response))
                return None
            accepted = policy.accept(request)
            response = policy.finish(request, accepted.response)
            if response.status != 101:
                log.debug("%s %s -> %d (process_response)", request.method, redact_url(request.path), response.status)
                _answer_and_close(stream, handshake.serialize_response(response))
                return None
            protocol = new_protocol(opts, False, accepted.extension)
            conn = Connection(stream, protocol, self._connection_options, request=request, subprotocol=accepted.subprotocol)
            conn._rooms = self._fanout.rooms
            if request.remote_address != peer:
                conn.remote_address = request.remote_address  # the client's, as the trusted proxy says
            with self._lock:
                if self._stopping.is_set():
                    raise InvalidHandshake("server shutting down", status=503)
                self._connections.add(conn)  # before the 101: a broadcast from now on reaches it
            self._forget_pending(client)
            self._prepare(conn)
            conn._open(handshake.serialize_response(response), leftover)
            conn.logger.info("%s upgraded %s", request.remote_address, redact_url(request.path))
            return conn
        except _ProxyLineError as exc:
            log.debug("connection from %s dropped: %s", addr, exc)  # the spec says: close, do not answer
        except InvalidHandshake as exc:
            log.debug("handshake with %s failed: %s", addr, exc)
            response = policy.finish(request, handshake.reject_response(exc))
            _answer_and_close(stream, handshake.serialize_response(response))
            return None
        except WebSocketTimeout:
            log.debug("handshake with %s timed out", addr)
        except (OSError, WebSocketError) as exc:
            log.debug("handshake with %s failed: %s", addr, exc)
        stream.shutdown()
        stream.close()
        return None


def _read_request(
    stream: Stream, opts: ServerOptions, policy: ServerPolicy, peer: Optional[Tuple[Any, ...]], deadline: Optional[float]
) -> Tuple[Request, bytes]:
    """Read a client's opening request: socket options, PROXY line, TLS, then the HTTP head (and what follows it)."""
    if stream.sock.family in (socket.AF_INET, socket.AF_INET6):
        # as the client does: with Nagle, a message written after another waits for its ACK (40 ms stalls)
        stream.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # before the caller's: they may turn it off
    for level, option, value in opts.socket_options or ():
        stream.sock.setsockopt(level, option, value)
    proxied = None
    if policy.proxy_protocol:
        if not policy.admits_proxy(peer):
            raise _ProxyLineError(f"a PROXY protocol line from {peer}, which is not a trusted proxy")
        proxied = _read_proxy_line(stream, deadline)
    if opts.ssl_context is not None:
        from .tls import TLS

        stream.start_tls(TLS(opts.ssl_context, server_side=True), deadline)
    head, leftover = read_head(stream, opts.max_header_size, deadline)
    request = handshake.parse_request(head)
    request.peer_address = peer
    request.remote_address = policy.client_address(peer, proxied, request.headers)
    return request, leftover


class _Handlers:
    """The handler of each new connection: the server's, or the one its route names."""

    def __init__(self, handler: Any, callbacks: Dict[str, Any]) -> None:
        self.router = handler if isinstance(handler, Router) else None
        self._callbacks = callbacks
        self._factories: Dict[Optional[str], Callable[[], Handler]] = {}
        if self.router is None:
            self._factories[None] = resolve_handler(handler, **callbacks)

    def for_connection(self, conn: Connection) -> Handler:
        """A handler for ``conn`` (with a router, its request's route was matched by the router's hook)."""
        route = conn.request.route if self.router is not None and conn.request is not None else None
        factory = self._factories.get(route)
        if factory is None:
            assert self.router is not None and conn.request is not None and route is not None
            factory = self._factories[route] = resolve_handler(self.router.handler_for(conn.request), **self._callbacks)
        return factory()


class _ProxyLineError(Exception):
    """Internal: a connection's PROXY protocol line is missing, malformed or not allowed (the connection is dropped)."""


def _read_proxy_line(stream: Stream, deadline: Optional[float]) -> Optional[Tuple[str, int]]:
    """Read the PROXY protocol v1 line that starts ``stream``; return its source (``None``: UNKNOWN).

    The bytes after the line go back to the stream, for TLS or the HTTP head.
    """
    buf = b""
    while True:
        try:
            found = parse_proxy_v1(buf)
        except InvalidHandshake as exc:
            raise _ProxyLineError(str(exc)) from None
        if found is not None:
            source, length = found
            stream.unread(buf[length:])
            return source
        chunk = stream.read(deadline)
        if not chunk:
            raise _ProxyLineError("the connection ended before its PROXY protocol line")
        buf += chunk


def serve(handler: Any = None, **kwargs: Any) -> Server:
    """Create a :class:`Server` and start it in the background.

    Use it as a context manager: ``with serve(on_message=..., port=0) as server:``.
    """
    return Server(handler, **kwargs).start()


def _bind(host: Optional[str], port: int, unix_socket: Optional[str], backlog: int) -> socket.socket:
    """Create the listening socket (TCP with SO_REUSEADDR, dual-stack for ``::``, or Unix)."""
    if unix_socket is not None:
        sock = new_unix_socket()
        try:
            if os.path.exists(unix_socket):
                os.unlink(unix_socket)
            sock.bind(unix_socket)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock
    if host in (None, "", "::") and socket.has_dualstack_ipv6():
        return socket.create_server(("::", port), family=socket.AF_INET6, backlog=backlog, reuse_port=False, dualstack_ipv6=True)
    infos = socket.getaddrinfo(host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, addr = infos[0]
    return socket.create_server(addr[:2], family=family, backlog=backlog)


def _answer_and_close(stream: Stream, data: bytes) -> None:
    """Send an HTTP answer and close so that it is not lost to a reset: FIN, drain briefly, close."""
    try:
        stream.write([data], time.monotonic() + 2.0)
        stream.half_close(time.monotonic() + 1.0)
        deadline = time.monotonic() + 1.0
        for _ in range(16):
            if not stream.read(deadline):
                break
    except (OSError, WebSocketError):
        pass
    stream.shutdown()
    stream.close()
