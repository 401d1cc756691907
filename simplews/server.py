"""The threaded server: an accept thread plus one thread per connection."""

from __future__ import annotations

import logging
import os
import signal
import socket
import ssl
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple, Union

from . import fanout, handshake
from .connection import (
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_MAX_QUEUE,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PING_TIMEOUT,
    Connection,
)
from .exceptions import InvalidHandshake, NegotiationError, OpenTimeout, WebSocketError
from .handlers import OnClose, OnError, OnMessage, OnOpen, resolve_handler, run_connection
from .handshake import Headers, Request, Response, redact_url
from .listener import DEFAULT_MAX_PENDING_HANDSHAKES, Listener
from .protocol import DEFAULT_FRAME_SIZE, DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, Protocol, State
from .transport import discard, read_head

if TYPE_CHECKING:  # pragma: no cover
    from .deflate import DeflateConfig

__all__ = ["Server", "serve", "DEFAULT_THREAD_STACK_SIZE"]

logger = logging.getLogger("simplews")

#: Stack size for connection threads. Only touched pages are resident, so an
#: idle connection costs about 43 KiB resident whatever this is (measured with
#: 1,000 connections); what it bounds is address space: about 1.8 MiB per
#: connection at 512 KiB against 9.5 MiB with the usual 8 MiB default, which
#: matters on 32-bit boards. 512 KiB is the smallest power of two at which
#: handler code recursing to Python's default recursion limit gets a
#: RecursionError rather than a crash on CPython 3.9 and 3.10 (256 KiB crashes).
DEFAULT_THREAD_STACK_SIZE = 512 * 1024
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
_stack_lock = threading.Lock()


class _Interrupted(BaseException):
    """Internal: SIGINT or SIGTERM arrived in :meth:`Server.serve_forever`."""

ProcessRequest = Callable[[Request], Optional[Union[Response, Tuple[int, Any, Any]]]]
SelectSubprotocol = Callable[[Request, Sequence[str]], Optional[str]]


class Server:
    """A WebSocket server running one thread per connection.

    Give callbacks (``on_open``, ``on_message``, ``on_close``, ``on_error``), a
    handler object or class with those methods, or a ``handler(ws)`` function.
    Use it as a context manager (starts in the background, shuts down on
    exit), or call :meth:`start` / :meth:`serve_forever` and :meth:`shutdown`.

    Every connection's :class:`~simplews.Request` (path, ``query``, headers,
    ``remote_address``, chosen ``subprotocol``) is ``ws.request`` in every
    handler style. Before the upgrade, ``process_request(request)`` may answer
    with a :class:`~simplews.Response` or ``(status, headers, body)`` instead
    (health checks, pages, 401/403); if it raises, the client gets a 500. A
    plain GET without ``Upgrade`` gets 426. Policies: ``origins`` (403),
    ``subprotocols`` or ``select_subprotocol(request, offered)``,
    ``max_connections`` (503; over TLS the connection is just closed),
    ``handshake_timeout`` (slow or silent clients dropped), ``max_header_size``
    (431). Transports: ``ssl_context``, ``host="::"`` (dual-stack), ``unix_socket``,
    ``sock`` (a bound socket); listening sockets use ``SO_REUSEADDR``. Each
    connection has one thread, started with ``thread_stack_size``.
    ``compression`` is ``"deflate"`` (accept permessage-deflate offers), ``None``
    (decline them) or a :class:`~simplews.DeflateConfig` (parameters, memory, threshold).
    """

    def __init__(
        self,
        handler: Any = None,
        *,
        on_open: Optional[OnOpen] = None,
        on_message: Optional[OnMessage] = None,
        on_close: Optional[OnClose] = None,
        on_error: Optional[OnError] = None,
        host: Optional[str] = "127.0.0.1",
        port: int = 8765,
        sock: Optional[socket.socket] = None,
        unix_socket: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        subprotocols: Optional[Sequence[str]] = None,
        select_subprotocol: Optional[SelectSubprotocol] = None,
        origins: Optional[Iterable[Optional[str]]] = None,
        process_request: Optional[ProcessRequest] = None,
        compression: Union[str, DeflateConfig, None] = "deflate",
        max_connections: Optional[int] = None,
        max_pending_handshakes: Optional[int] = DEFAULT_MAX_PENDING_HANDSHAKES,
        handshake_timeout: Optional[float] = DEFAULT_HANDSHAKE_TIMEOUT,
        max_header_size: Optional[int] = handshake.DEFAULT_MAX_HEADER_SIZE,
        ping_interval: Optional[float] = DEFAULT_PING_INTERVAL,
        ping_timeout: Optional[float] = DEFAULT_PING_TIMEOUT,
        close_timeout: Optional[float] = DEFAULT_CLOSE_TIMEOUT,
        send_timeout: Optional[float] = None,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: Optional[int] = DEFAULT_MAX_FRAGMENTS,
        frame_size: Optional[int] = DEFAULT_FRAME_SIZE,
        max_queue: Optional[int] = DEFAULT_MAX_QUEUE,
        thread_stack_size: Optional[int] = DEFAULT_THREAD_STACK_SIZE,
        backlog: int = 128,
    ) -> None:
        from .deflate import resolve_config

        if thread_stack_size is not None and thread_stack_size < 32768:
            raise ValueError("thread_stack_size must be at least 32 KiB (or None for the interpreter's default)")
        self._deflate = resolve_config(compression, is_client=False)
        self._handler_factory = resolve_handler(
            handler, on_open=on_open, on_message=on_message, on_close=on_close, on_error=on_error
        )
        self.subprotocols = list(subprotocols or [])
        self.select_subprotocol = select_subprotocol
        self.origins = None if origins is None else set(origins)
        self.process_request = process_request
        self.compression = compression
        self.max_connections = max_connections
        self.max_pending_handshakes = max_pending_handshakes
        self.handshake_timeout = handshake_timeout
        self.max_header_size = max_header_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.close_timeout = close_timeout
        self.send_timeout = send_timeout
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.frame_size = frame_size
        self.max_queue = max_queue
        self.thread_stack_size = thread_stack_size
        self.ssl_context = ssl_context
        self._lock = threading.Lock()
        self._connections: Set[Connection] = set()
        self._pending: Set[socket.socket] = set()
        self._upgrading = 0  # sockets between the 101 and their registration as connections
        self._threads: Set[threading.Thread] = set()
        self._started = False
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self.unix_socket = unix_socket
        self.socket = sock if sock is not None else self._bind(host, port, unix_socket, backlog)
        if sock is not None:
            sock.listen(backlog)
        self._address: Any = self.socket.getsockname()  # still known after shutdown closed the socket
        self._listener = Listener(
            self.socket, spawn=self._spawn, full=self._full, saturated=self._saturated, tls=ssl_context is not None
        )

    # --- binding ------------------------------------------------------------------------

    @staticmethod
    def _bind(host: Optional[str], port: int, unix_socket: Optional[str], backlog: int) -> socket.socket:
        """Create the listening socket (TCP with SO_REUSEADDR, dual-stack for ``::``, or Unix)."""
        if unix_socket is not None:
            if os.path.exists(unix_socket):
                os.unlink(unix_socket)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.bind(unix_socket)
            sock.listen(backlog)
            return sock
        if host in (None, "", "::") and socket.has_dualstack_ipv6():
            return socket.create_server(("::", port), family=socket.AF_INET6, backlog=backlog, reuse_port=False, dualstack_ipv6=True)
        infos = socket.getaddrinfo(host or "0.0.0.0", port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, _, _, _, addr = infos[0]
        return socket.create_server(addr[:2], family=family, backlog=backlog)

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
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}/"

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
            self._started = True
            self._listener.start()
        logger.info("listening on %s", self.url)
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
            logger.info("interrupted; shutting down")
        finally:
            self.shutdown()
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        """SIGINT/SIGTERM handler: leave the wait in :meth:`serve_forever` (once)."""
        if not self._stopping.is_set():
            raise _Interrupted(signum)

    def shutdown(self, timeout: Optional[float] = None) -> None:
        """Stop accepting, close every connection with 1001 and join every thread.

        Waits up to ``timeout`` (default ``close_timeout``) for clients to
        finish the close handshake, then aborts the rest. A client that does
        not read (its writer blocked on a full buffer) does not delay it:
        close frames are written without blocking. Safe to call twice and
        from several threads; later calls wait for the first to finish.
        """
        with self._lock:
            first = not self._stopping.is_set()
            self._stopping.set()
        if not first:
            self._stopped.wait()
            return
        wait = self.close_timeout if timeout is None else timeout
        deadline = time.monotonic() + (wait if wait is not None else 3600.0)
        self._listener.stop()
        if self.unix_socket is not None:
            try:
                os.unlink(self.unix_socket)
            except OSError:
                pass
        with self._lock:
            conns = list(self._connections)
            pending = list(self._pending)
        for sock in pending:
            try:
                sock.shutdown(socket.SHUT_RDWR)  # wakes its thread, which closes it
            except OSError:
                pass
        fanout.fan_out(conns, _close_frame_1001, deadline, lambda conn, partial: conn._terminate())
        for thread in self._thread_snapshot():
            thread.join(max(0.0, deadline - time.monotonic()))
        for conn in self.connections:
            conn._terminate()
        for thread in self._thread_snapshot():
            thread.join(5.0)
        self._stopped.set()
        logger.info("server shut down")

    def _thread_snapshot(self) -> List[threading.Thread]:
        with self._lock:
            return [t for t in self._threads if t is not threading.current_thread()]

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    def broadcast(
        self,
        message: Union[str, bytes],
        exclude: Optional[Iterable[Connection]] = None,
        *,
        timeout: Optional[float] = fanout.DEFAULT_BROADCAST_TIMEOUT,
    ) -> int:
        """Send ``message`` to every open connection but ``exclude``; return how many got it.

        No client can hold up the others: the message is encoded once (per
        compression setting), written to each socket without blocking, and
        the rest owed to slow clients is written as their sockets drain, all
        from this thread. A client that has not taken the whole message within
        ``timeout`` seconds (in total, not per client) is too slow: it is
        closed with code 1008 and not counted. A client whose connection is
        closing, or whose write lock another thread holds for the whole
        ``timeout`` (e.g. a handler blocked in ``send()``), is skipped and not
        counted. Never raises for a client's failure; a message that cannot be
        sent at all (wrong type) raises ``TypeError`` before anything is sent.
        """
        shared = fanout.encode_for_all(message, self.frame_size)
        skip = set(exclude or ())
        conns = [conn for conn in self.connections if conn not in skip]

        frame_size = self.frame_size

        def prepare(conn: Connection) -> Optional[bytes]:
            protocol = conn.protocol
            # fast path without the state lock: we hold the write lock, so no other sender
            # runs; a close the reader handles meanwhile only queues its reply after ours
            if protocol.state is State.OPEN and not protocol.has_pending and protocol.extension is None:
                if protocol.frame_size == frame_size:
                    return shared
            with conn._state_lock:
                protocol = conn.protocol
                if protocol.state is not State.OPEN:
                    return None
                pending = protocol.data_to_send() if protocol.has_pending else []
                if protocol.extension is None and protocol.frame_size == self.frame_size:
                    frames: List[Any] = [shared]
                else:
                    frames = protocol.send_message(message)
            buffers = pending + frames
            return shared if len(buffers) == 1 and buffers[0] is shared else b"".join(bytes(b) for b in buffers)

        deadline = time.monotonic() + (timeout if timeout is not None else 3600.0)
        return len(fanout.fan_out(conns, prepare, deadline, fanout.abort_slow))

    # --- accepting ----------------------------------------------------------------------

    def _live_count(self) -> int:
        with self._lock:
            return len(self._connections) + len(self._pending) + self._upgrading

    def _full(self) -> bool:
        """Whether ``max_connections`` is reached (for the listener)."""
        return self.max_connections is not None and self._live_count() >= self.max_connections

    def _saturated(self) -> bool:
        """Whether as many handshakes as allowed are in progress (for the listener)."""
        limit = self.max_pending_handshakes
        with self._lock:
            return limit is not None and len(self._pending) >= limit

    def _spawn(self, client: socket.socket, addr: Any) -> None:
        """Start the connection's thread with the configured stack size."""
        thread = threading.Thread(target=self._serve_one, args=(client, addr), name=f"simplews-conn-{addr}", daemon=True)
        with self._lock:
            self._pending.add(client)
            self._threads.add(thread)
        with _stack_lock:
            old = threading.stack_size(self.thread_stack_size) if self.thread_stack_size else None
            try:
                thread.start()
            finally:
                if old is not None:
                    threading.stack_size(old)

    def _serve_one(self, client: socket.socket, addr: Any) -> None:
        """A connection's thread: handshake, then the handler until close."""
        try:
            conn = self._handshake(client, addr)
            if conn is None:
                return
            with self._lock:
                self._upgrading -= 1
                if self._stopping.is_set():
                    conn._start_close(1001, "server shutting down")
                self._connections.add(conn)
            try:
                try:
                    handler = self._handler_factory()
                except Exception:
                    logger.exception("%r: creating the handler failed", conn)
                    conn.close(1011, "internal error")
                    return
                run_connection(conn, handler)
            finally:
                conn._terminate()  # no-op after a clean close; never leave a socket behind
                with self._lock:
                    self._connections.discard(conn)
        except Exception:
            logger.exception("unexpected error serving %s", addr)
            discard(client)
        finally:
            self._forget_pending(client)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _handshake(self, client: socket.socket, addr: Any) -> Optional[Connection]:
        """Run the server side of the opening handshake; ``None`` if it did not upgrade."""
        sock: socket.socket = client
        deadline = None if self.handshake_timeout is None else time.monotonic() + self.handshake_timeout
        try:
            if self.ssl_context is not None:
                sock.settimeout(self.handshake_timeout)
                sock = self.ssl_context.wrap_socket(sock, server_side=True)
                with self._lock:
                    self._pending.discard(client)
                    self._pending.add(sock)
            head, leftover = read_head(sock, self.max_header_size, deadline)
            request = handshake.parse_request(head)
            request.remote_address = addr if isinstance(addr, tuple) else None
            return self._upgrade(sock, request, leftover)
        except InvalidHandshake as exc:
            logger.info("handshake with %s failed: %s", addr, exc)
            _send_quietly(sock, handshake.build_reject(exc))
            _close_gracefully(sock)
            self._forget_pending(sock)
            return None
        except (OpenTimeout, socket.timeout):
            logger.info("handshake with %s timed out", addr)
        except (OSError, ssl.SSLError, WebSocketError) as exc:
            logger.info("handshake with %s failed: %s", addr, exc)
        except BaseException:
            self._forget_pending(sock)
            raise
        discard(sock)
        self._forget_pending(sock)
        return None

    def _forget_pending(self, sock: socket.socket) -> None:
        """The handshake on ``sock`` (maybe the TLS socket that replaced the accepted one) is over."""
        limit = self.max_pending_handshakes
        with self._lock:
            was_saturated = limit is not None and len(self._pending) >= limit
            self._pending.discard(sock)
        if was_saturated:
            self._listener.wake()  # it stopped accepting at the limit

    def _upgrade(self, sock: socket.socket, request: Request, leftover: bytes) -> Optional[Connection]:
        """Apply the server's policies to a parsed request and answer it."""
        if self.process_request is not None:
            try:
                answer = self.process_request(request)
                response = None if answer is None else _as_response(answer)
            except Exception:
                logger.exception("process_request failed for %s %s", request.method, redact_url(request.path))
                raise InvalidHandshake("internal server error", status=500) from None
            if response is not None:
                _send_quietly(sock, handshake.build_response(response.status, response.headers, response.body))
                logger.info("%s %s -> %d (process_request)", request.method, redact_url(request.path), response.status)
                _close_gracefully(sock)
                return None
        key = handshake.check_request(request)
        if self.origins is not None and request.headers.get("Origin") not in self.origins:
            origin = request.headers.get("Origin")
            raise InvalidHandshake(f"origin {origin if origin is None else redact_url(origin)!r} not allowed", status=403)
        offered = handshake.parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol"))
        subprotocol = self._choose_subprotocol(request, offered)
        request.subprotocol = subprotocol
        extension = None
        ext_header = None
        if self._deflate is not None:
            values = request.headers.get_all("Sec-WebSocket-Extensions")
            if values:
                from . import deflate

                accepted = deflate.server_accept(values, self._deflate)
                if accepted is not None:
                    ext_header, extension = accepted
        with self._lock:
            # a socket still pending when shutdown() looks has not been upgraded: it may be aborted
            if self._stopping.is_set():
                raise InvalidHandshake("server shutting down", status=503)
            self._upgrading += 1  # still counted against max_connections until registered
        self._forget_pending(sock)
        try:
            sock.settimeout(None)
            sock.sendall(handshake.build_accept(key, subprotocol=subprotocol, extensions=ext_header))
            protocol = Protocol(
                False,
                max_message_size=self.max_message_size,
                max_fragments=self.max_fragments,
                frame_size=self.frame_size,
                extension=extension,
            )
            logger.info("%s upgraded %s", request.remote_address, redact_url(request.path))
            return self._new_connection(sock, protocol, request, subprotocol, leftover)
        except BaseException:
            with self._lock:
                self._upgrading -= 1
            raise

    def _new_connection(
        self, sock: socket.socket, protocol: Protocol, request: Request, subprotocol: Optional[str], leftover: bytes
    ) -> Connection:
        """The server-side connection after a 101 (the 101 itself is not kept: memory per idle connection)."""
        response = None
        return Connection(
            sock,
            protocol,
            request=request,
            response=response,
            subprotocol=subprotocol,
            leftover=leftover,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
            send_timeout=self.send_timeout,
            max_queue=self.max_queue,
        )

    def _choose_subprotocol(self, request: Request, offered: List[str]) -> Optional[str]:
        """The subprotocol to accept, from the callback or the preference list."""
        if self.select_subprotocol is not None:
            try:
                chosen = self.select_subprotocol(request, offered)
            except Exception:
                logger.exception("select_subprotocol failed for %s", redact_url(request.path))
                raise InvalidHandshake("internal server error", status=500) from None
            if chosen is not None and chosen not in offered:
                raise NegotiationError(f"select_subprotocol chose {chosen!r}, which the client did not offer")
            return chosen
        return handshake.select_subprotocol(offered, self.subprotocols)


def serve(handler: Any = None, **kwargs: Any) -> Server:
    """Create a :class:`Server` and start it in the background.

    Use it as a context manager: ``with serve(on_message=..., port=0) as server:``.
    """
    return Server(handler, **kwargs).start()


def _as_response(answer: Union[Response, Tuple[int, Any, Any]]) -> Response:
    """Accept a :class:`Response` or a ``(status, headers, body)`` tuple from process_request."""
    if isinstance(answer, Response):
        return answer
    status, headers, body = answer
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Response(int(status), Headers(headers or []), bytes(body or b""))


def _close_frame_1001(conn: Connection) -> Optional[bytes]:
    """The bytes that start a connection's close with 1001 (for :func:`fanout.fan_out`)."""
    with conn._state_lock:
        protocol = conn.protocol
        out = protocol.data_to_send() if protocol.has_pending else []
        out += protocol.send_close(1001, "server shutting down")
        if protocol.close_sent is not None:
            conn._arm_close_deadline()
    return b"".join(bytes(b) for b in out) or None


def _send_quietly(sock: socket.socket, data: bytes) -> None:
    """Send an HTTP answer, ignoring a peer that is already gone."""
    try:
        sock.settimeout(2.0)
        sock.sendall(data)
    except OSError:
        pass



def _close_gracefully(sock: socket.socket) -> None:
    """Close after an HTTP answer so that it is not lost to a reset: FIN, drain briefly, close."""
    try:
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        for _ in range(16):
            if not sock.recv(65536):
                break
    except OSError:
        pass
    discard(sock)
