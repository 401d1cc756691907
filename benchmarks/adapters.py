"""Adapters: one small shim per library, reducing it to a common shape.

Client side: ``connect(endpoint)`` returns a :class:`~benchmarks.apps.ClientConn`
made of the library's own bound methods (no wrapper call per message).
Server side: ``serve(make_on_message, tls)`` starts the library's server on
127.0.0.1, port 0, and returns a :class:`ServerHandle`; the handler is the
library's most direct per-message path.  With TLS files (the ``*-tls``
workloads) each library gets a default ``ssl`` context built from them, in
whatever way its API takes one.

Libraries are imported lazily inside the adapter functions, so a library
that is not installed only skips its own rows.

Settings that differ from a library's defaults, for fairness:

* compression off everywhere (``compression=None``; the fixed peers offer
  no extension) except in the ``deflate`` rows (``Endpoint.deflate``, the
  servers' ``deflate=True``), where each library's default
  permessage-deflate settings are used;
* keepalive pings off (``ping_interval=None``) where a library has them on
  by default (websockets), so no background traffic disturbs the counts;
  only ``idle-cpu-ka`` (``Endpoint.keepalive``) leaves them at the default.

Everything else (buffer sizes, size limits, UTF-8 validation, Nagle,
thread-safety locks) is the library's default.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import threading
from typing import Any, Callable, Dict, Optional, Set, Tuple

from benchmarks.apps import ClientConn, OnMessage
from benchmarks.codec import read_http_head
from benchmarks.tls import TlsFiles, client_context, server_context

#: set in the worker of ``simplews-nagle``
NAGLE_ENV = "SIMPLEWS_BENCH_NAGLE"

Broadcast = Callable[[str], object]
MakeHandler = Callable[[Optional[Broadcast]], OnMessage]
# serve(make_handler, tls, deflate): a running server
Serve = Callable[[MakeHandler, Optional[TlsFiles], bool], "ServerHandle"]


@dataclasses.dataclass
class ServerHandle:
    """A running server: its port and a way to stop it."""

    port: int
    stop: Callable[[], object]


@dataclasses.dataclass(frozen=True)
class Endpoint:
    """Where and how a client connects: ``url`` is ``wss://`` when ``tls`` is set."""

    url: str
    host: str
    port: int
    tls: Optional[TlsFiles] = None
    keepalive: bool = False
    deflate: bool = False


@dataclasses.dataclass(frozen=True)
class Adapter:
    """How to drive one library; ``client``/``server`` are None if unsupported.

    ``imports`` is what a client process runs to get the client entry point
    (attribute access included, so lazy imports are counted); ``probe``
    checks that the library is usable at all.  ``keepalive``: its client
    pings by default.  ``idle_cpu_note``: why ``idle-cpu`` is not measured
    for its client (said in the table instead of a made-up figure).
    ``deflate``: the roles in which it can negotiate permessage-deflate.
    ``env``: environment of its worker processes (``simplews-nospeedups``);
    ``rows``: if set, the only workloads it runs when ``--libs`` does not name it.
    """

    name: str
    imports: str
    dist: Optional[str]
    probe: str
    client: Optional[Callable[[Endpoint], ClientConn]] = None
    server: Optional[Serve] = None
    server_binary: bool = True
    keepalive: bool = False
    idle_cpu_note: str = ""
    note: str = ""
    deflate: Tuple[str, ...] = ()
    env: Tuple[Tuple[str, str], ...] = ()
    rows: Tuple[str, ...] = ()


def _start_thread(target: Callable[[], object]) -> None:
    threading.Thread(target=target, daemon=True).start()


# -- raw TCP --------------------------------------------------------------

def _client_ssl(endpoint: Endpoint) -> Any:
    return client_context(endpoint.tls) if endpoint.tls else None


def _server_ssl(tls: Optional[TlsFiles]) -> Any:
    return server_context(tls) if tls else None


def _keepalive(endpoint: Endpoint) -> Dict[str, Any]:
    """Keyword arguments: the library's default keepalive, or ``ping_interval=None``."""
    return {} if endpoint.keepalive else {"ping_interval": None}


def _compression(deflate: bool) -> Optional[str]:
    return "deflate" if deflate else None


def raw_client(endpoint: Endpoint) -> ClientConn:
    from benchmarks.raw import RawConnection
    conn = RawConnection.connect(endpoint.host, endpoint.port, context=_client_ssl(endpoint))
    if endpoint.deflate:  # the same zlib per message as the fixed peer (benchmarks.deflate)
        from benchmarks.deflate import RawDeflate
        state, recv = RawDeflate(conn.send_text, conn.send_binary), conn.recv
        return ClientConn(state.send, conn.send_binary, lambda: state.decode(recv()), conn.close)
    return ClientConn(conn.send_text, conn.send_binary, conn.recv, conn.close)


def raw_server(make_handler: MakeHandler, tls: Optional[TlsFiles], deflate: bool = False) -> ServerHandle:
    from benchmarks.deflate import raw_deflate_handler
    from benchmarks.raw import RawServer
    holder: Dict[str, RawServer] = {}
    on_message = make_handler(lambda m: holder["s"].broadcast(m))
    server = RawServer(raw_deflate_handler(on_message) if deflate else on_message, context=_server_ssl(tls))
    holder["s"] = server
    server.start()
    return ServerHandle(server.port, server.shutdown)


# -- websockets (sync API) -------------------------------------------------

def websockets_client(endpoint: Endpoint) -> ClientConn:
    from websockets.sync.client import connect
    ws = connect(endpoint.url, compression=_compression(endpoint.deflate), ssl=_client_ssl(endpoint),
                 **_keepalive(endpoint))
    return ClientConn(ws.send, ws.send, ws.recv, ws.close)


def websockets_server(make_handler: MakeHandler, tls: Optional[TlsFiles], deflate: bool = False) -> ServerHandle:
    from websockets.sync.server import broadcast, serve
    holder: Dict[str, Any] = {}
    on_message = make_handler(lambda m: broadcast(holder["s"].connections, m))

    def handler(ws: Any) -> None:
        send = ws.send
        for message in ws:
            on_message(send, message)

    server = serve(handler, "127.0.0.1", 0, compression=_compression(deflate), ping_interval=None,
                   ssl=_server_ssl(tls))
    holder["s"] = server
    _start_thread(server.serve_forever)
    return ServerHandle(server.socket.getsockname()[1], server.shutdown)


# -- websocket-client (client only) ----------------------------------------

def websocket_client_client(endpoint: Endpoint) -> ClientConn:
    import websocket
    sslopt = {"context": client_context(endpoint.tls)} if endpoint.tls else None
    ws = websocket.create_connection(endpoint.url, sslopt=sslopt)
    return ClientConn(ws.send, ws.send_binary, ws.recv, ws.close)


# -- simple-websocket --------------------------------------------------------

def simple_websocket_client(endpoint: Endpoint) -> ClientConn:
    import simple_websocket
    ws = simple_websocket.Client.connect(endpoint.url, ssl_context=_client_ssl(endpoint))
    return ClientConn(ws.send, ws.send, ws.receive, ws.close)


def _wsgi_environ(head: bytes, sock: Any) -> dict:
    """The WSGI-like environ simple-websocket expects (as werkzeug builds it)."""
    environ = {"werkzeug.socket": sock, "REQUEST_METHOD": "GET"}
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        environ["HTTP_" + name.strip().upper().replace("-", "_")] = value.strip()
    return environ


def simple_websocket_server(make_handler: MakeHandler, tls: Optional[TlsFiles], deflate: bool = False) -> ServerHandle:
    """Thread per connection, like werkzeug's threaded server, then
    ``simple_websocket.Server.accept(environ)`` and a ``receive()`` loop
    (over TLS, werkzeug hands it the ``ssl``-wrapped socket: so do we).
    It accepts permessage-deflate whenever a client offers it (``deflate``
    changes nothing: the fixed client only offers it in the deflate rows)."""
    import socket

    import simple_websocket
    conns: Set[Any] = set()
    lock = threading.Lock()

    def broadcast(message: str) -> int:
        with lock:
            targets = list(conns)
        for ws in targets:
            try:
                ws.send(message)
            except Exception:  # noqa: BLE001 - one bad client must not stop it
                pass
        return len(targets)

    on_message = make_handler(broadcast)
    context = _server_ssl(tls)

    def serve_connection(sock: socket.socket) -> None:
        try:
            if context is not None:
                sock = context.wrap_socket(sock, server_side=True)
            head, _rest = read_http_head(sock)
            ws = simple_websocket.Server.accept(_wsgi_environ(head, sock))
        except Exception:  # noqa: BLE001
            sock.close()
            return
        with lock:
            conns.add(ws)
        send, receive = ws.send, ws.receive
        try:
            while True:
                on_message(send, receive())
        except simple_websocket.ConnectionClosed:
            pass
        finally:
            with lock:
                conns.discard(ws)

    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)

    def accept_loop() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()

    _start_thread(accept_loop)
    return ServerHandle(listener.getsockname()[1], listener.close)


# -- websocket-server (server only, text only) ------------------------------

def websocket_server_server(make_handler: MakeHandler, tls: Optional[TlsFiles], deflate: bool = False) -> ServerHandle:
    """Its TLS is its own ``key=``/``cert=`` files (it calls ``ssl.wrap_socket``)."""
    import logging
    import ssl

    from websocket_server import WebsocketServer
    files: Dict[str, Any] = {}
    if tls is not None:
        if not hasattr(ssl, "wrap_socket"):  # removed in 3.12: it would fall back to plain TCP
            raise RuntimeError("websocket-server's TLS needs ssl.wrap_socket (Python < 3.12)")
        files = {"key": tls.key, "cert": tls.cert}
    server = WebsocketServer(host="127.0.0.1", port=0, loglevel=logging.WARNING, **files)
    on_message = make_handler(server.send_message_to_all)
    server.set_fn_message_received(
        lambda client, _server, message: on_message(client["handler"].send_message, message)
    )
    server.run_forever(threaded=True)
    return ServerHandle(server.port, server.shutdown_abruptly)


# -- simplews ----------------------------------------------------------------

def simplews_client(endpoint: Endpoint) -> ClientConn:
    import simplews
    ws = simplews.connect(endpoint.url, compression=_compression(endpoint.deflate), ssl_context=_client_ssl(endpoint),
                          **_keepalive(endpoint))
    return ClientConn(ws.send, ws.send, ws.recv, ws.close)


def simplews_server(make_handler: MakeHandler, tls: Optional[TlsFiles], deflate: bool = False) -> ServerHandle:
    import simplews
    holder: Dict[str, Any] = {}
    on_message = make_handler(lambda m: holder["s"].broadcast(m))
    # simplews-nagle: accepted sockets with Nagle's algorithm on, as websocket-server leaves them
    nagle = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 0)] if os.environ.get(NAGLE_ENV) else None
    server = simplews.Server(
        on_message=lambda ws, message: on_message(ws.send, message),
        host="127.0.0.1", port=0, compression=_compression(deflate), ping_interval=None,
        ssl_context=_server_ssl(tls), socket_options=nagle,
    )
    holder["s"] = server
    server.start()
    return ServerHandle(server.port, server.shutdown)


ADAPTERS: Dict[str, Adapter] = {a.name: a for a in (
    Adapter("raw-tcp", "import socket", None, "import socket",
            client=raw_client, server=raw_server, deflate=("client", "server")),
    Adapter("websockets", "from websockets.sync.client import connect", "websockets",
            "import websockets.sync.client, websockets.sync.server",
            client=websockets_client, server=websockets_server, keepalive=True,
            deflate=("client", "server"), note="sync API, compression=None, ping_interval=None"),
    Adapter("websocket-client", "import websocket; websocket.create_connection", "websocket-client",
            "import websocket; websocket.create_connection",
            client=websocket_client_client,
            idle_cpu_note="no background thread: 0 by construction, not measured"),
    Adapter("simple-websocket", "import simple_websocket; simple_websocket.Client", "simple-websocket",
            "import simple_websocket; simple_websocket.Server.accept",
            client=simple_websocket_client, server=simple_websocket_server, deflate=("server",)),
    Adapter("websocket-server", "import websocket_server; websocket_server.WebsocketServer", "websocket-server",
            "import websocket_server; websocket_server.WebsocketServer",
            server=websocket_server_server, server_binary=False,
            note="no binary frames: upload workloads n/a"),
    Adapter("simplews", "import simplews; simplews.connect", None,
            "import simplews; simplews.connect; simplews.Server",
            client=simplews_client, server=simplews_server, keepalive=True, deflate=("client", "server")),
    Adapter("simplews-nospeedups", "import simplews; simplews.connect", None,
            "import simplews.frames; simplews.connect\n"
            "if simplews.frames.SPEEDUPS: raise SystemExit('C accelerator loaded despite SIMPLEWS_NO_SPEEDUPS=1')",
            client=simplews_client, server=simplews_server, keepalive=True, deflate=("client", "server"),
            env=(("SIMPLEWS_NO_SPEEDUPS", "1"),), rows=("upload-1m", "pi-client", "pi-server"),
            note="simplews with SIMPLEWS_NO_SPEEDUPS=1: no C accelerator"),
    Adapter("simplews-nagle", "import simplews; simplews.connect", None,
            "import simplews; simplews.Server",
            server=simplews_server, env=((NAGLE_ENV, "1"),), rows=("stream", "stream-tls", "broadcast"),
            note="simplews's server with socket_options turning TCP_NODELAY off (Nagle on, as websocket-server)"),
)}

BASELINE = "raw-tcp"
