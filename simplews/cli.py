"""The command line: ``simplews serve``, ``simplews connect URL`` and ``--version``.

``serve`` runs an echo server (``--broadcast``: a relay to every client) and
prints the URL it listens on. ``connect`` is an interactive session like
wscat: each line read from stdin is sent as a text message, each message
received is printed on stdout (status lines go to stderr), end of input
(Ctrl-D, or the end of a pipe) closes the connection cleanly.

Exit codes: 0 success or normal close, 1 a connection or runtime failure,
2 a usage mistake (bad URL, bad option), 130 interrupted by Ctrl-C. Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
import threading
from typing import TYPE_CHECKING, List, Optional, Sequence, Tuple, Union

from . import __version__

if TYPE_CHECKING:  # pragma: no cover
    from .connection import Connection

__all__ = ["main", "build_parser"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class UsageError(Exception):
    """A mistake in the command line: reported in one line, exit code 2."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``simplews`` command."""
    parser = argparse.ArgumentParser(prog="simplews", description="WebSocket server and client on the command line.")
    parser.add_argument("--version", action="version", version=f"simplews {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log to stderr (-vv: frame level)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    serve = commands.add_parser("serve", help="run an echo (or --broadcast) server")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)")
    serve.add_argument("--port", type=int, default=8765, help="port to listen on (default 8765; 0 picks a free one)")
    serve.add_argument("--broadcast", action="store_true", help="relay every message to all clients instead of echoing")
    serve.add_argument("--subprotocol", action="append", default=[], help="a subprotocol to accept (repeatable)")
    serve.add_argument("--certfile", help="TLS certificate chain (PEM): serve wss://")
    serve.add_argument("--keyfile", help="TLS private key (PEM), if not in --certfile")

    connect = commands.add_parser("connect", help="an interactive client: stdin lines are sent, messages are printed")
    connect.add_argument("url", help="ws:// or wss:// URL")
    connect.add_argument("-H", "--header", action="append", default=[], help="extra handshake header 'Name: value' (repeatable)")
    connect.add_argument("--subprotocol", action="append", default=[], help="a subprotocol to offer (repeatable)")
    connect.add_argument("--origin", help="the Origin header")
    connect.add_argument("--proxy", help="http://[user:pass@]host:port CONNECT proxy (default: from HTTPS_PROXY/HTTP_PROXY)")
    connect.add_argument("--no-proxy", action="store_true", help="ignore proxy environment variables")
    connect.add_argument("--cafile", help="CA bundle (PEM) to verify the server with, instead of certifi's")
    connect.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    connect.add_argument("--timeout", type=float, default=10.0, help="seconds to open the connection (default 10)")
    connect.add_argument(
        "--wait", type=float, default=0.0, help="after end of input, keep printing messages up to SECONDS before closing (default 0)"
    )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.DEBUG if args.verbose > 1 else logging.INFO, format="%(name)s: %(message)s")
    try:
        if args.command == "serve":
            return run_serve(args)
        return run_connect(args)
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def _error(message: str) -> None:
    """Print a one-line error on stderr."""
    print(f"simplews: error: {message}", file=sys.stderr, flush=True)


def _status(message: str) -> None:
    """Print a status line on stderr (stdout carries only data)."""
    print(message, file=sys.stderr, flush=True)


# --- serve -----------------------------------------------------------------------------------


def _server_ssl_context(certfile: Optional[str], keyfile: Optional[str]) -> Optional[ssl.SSLContext]:
    """The TLS context for ``serve``, or ``None`` for plain ws://."""
    if certfile is None:
        if keyfile is not None:
            raise UsageError("--keyfile needs --certfile")
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(certfile, keyfile)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"cannot load TLS certificate {certfile!r}: {exc}") from None
    return context


def run_serve(args: argparse.Namespace) -> int:
    """``simplews serve``: echo (or relay) until Ctrl-C or SIGTERM."""
    from .exceptions import ConnectionClosed
    from .server import Server

    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not between 0 and 65535")
    context = _server_ssl_context(args.certfile, args.keyfile)
    server: Optional[Server] = None

    def echo(ws: Connection, message: Union[str, bytes]) -> None:
        try:
            ws.send(message)
        except ConnectionClosed:  # the client closed right after sending: nobody to answer
            pass

    def relay(ws: Connection, message: Union[str, bytes]) -> None:
        if server is not None:
            server.broadcast(message)

    try:
        server = Server(
            on_message=relay if args.broadcast else echo,
            host=args.host,
            port=args.port,
            ssl_context=context,
            subprotocols=args.subprotocol,
        )
    except OSError as exc:
        _error(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return EXIT_FAILURE
    mode = "broadcast" if args.broadcast else "echo"
    server.start()  # before SIGTERM can interrupt: an interrupted start() could not be shut down
    if threading.current_thread() is threading.main_thread():
        # SIGTERM as early as SIGINT: also before serve_forever() installs its own handler
        signal.signal(signal.SIGTERM, _interrupt)
    try:
        print(f"simplews {mode} server listening on {server.url}", flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
    return EXIT_OK


def _interrupt(signum: int, frame: object) -> None:
    """Turn SIGTERM into KeyboardInterrupt: a graceful shutdown, exit code 0."""
    raise KeyboardInterrupt


# --- connect ---------------------------------------------------------------------------------


def _parse_headers(values: List[str]) -> List[Tuple[str, str]]:
    """``Name: value`` strings as header pairs."""
    headers = []
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip() or any(c in value for c in "\r\n"):
            raise UsageError(f"--header {value!r} is not 'Name: value'")
        headers.append((name.strip(), text.strip()))
    return headers


def _client_ssl_context(args: argparse.Namespace) -> Optional[ssl.SSLContext]:
    """The TLS context for ``connect`` (``None``: the default, certifi's CA bundle)."""
    if args.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if args.cafile:
        try:
            return ssl.create_default_context(cafile=args.cafile)
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"cannot load --cafile {args.cafile!r}: {exc}") from None
    return None


def _show(message: object) -> str:
    """How a received message is printed: text as is, binary as hex."""
    if isinstance(message, bytes):
        return f"[binary {len(message)} bytes] {message.hex()}"
    return str(message)


def run_connect(args: argparse.Namespace) -> int:
    """``simplews connect URL``: send stdin lines, print received messages."""
    from .client import connect, parse_uri
    from .exceptions import ConnectionClosed, InvalidURI, WebSocketError
    from .handshake import redact_url

    try:
        parse_uri(args.url)
    except InvalidURI as exc:
        raise UsageError(str(exc)) from None
    headers = _parse_headers(args.header)
    context = _client_ssl_context(args)
    proxy: Optional[str] = None if args.no_proxy else (args.proxy or "auto")
    try:
        ws = connect(
            args.url,
            headers=headers,
            subprotocols=args.subprotocol or None,
            origin=args.origin,
            proxy=proxy,
            ssl_context=context,
            open_timeout=args.timeout,
        )
    except (WebSocketError, OSError) as exc:
        _error(f"cannot connect to {redact_url(args.url)}: {exc}")
        return EXIT_FAILURE
    _status(f"connected to {redact_url(args.url)}" + (f" (subprotocol {ws.subprotocol})" if ws.subprotocol else ""))
    done = threading.Event()
    sender = threading.Thread(target=_send_stdin, args=(ws, done, args.wait), name="simplews-cli-stdin", daemon=True)
    sender.start()
    try:
        for message in ws:
            print(_show(message), flush=True)
    except ConnectionClosed:
        pass
    except KeyboardInterrupt:
        ws.close(1000, "interrupted")
        return EXIT_INTERRUPTED
    finally:
        done.set()
    code, reason = ws.close_code or 1006, ws.close_reason or ""
    _status(f"disconnected ({code}{' ' + reason if reason else ''})")
    return EXIT_OK if code in (1000, 1001) else EXIT_FAILURE


def _send_stdin(ws: Connection, done: threading.Event, wait: float) -> None:
    """Send each stdin line (without its newline); close cleanly at end of input.

    At end of input it first waits up to ``wait`` seconds (less if the
    connection ends meanwhile) so that replies to the last lines are printed.
    """
    from .exceptions import ConnectionClosed

    try:
        for line in sys.stdin:
            ws.send(line.rstrip("\r\n"))
    except ConnectionClosed:
        return
    except (OSError, ValueError) as exc:  # stdin closed or unreadable
        _status(f"stdin: {exc}")
    if wait > 0:
        done.wait(wait)
    ws.close(1000, "")
