"""The command line: ``simplews serve``, ``simplews connect URL`` and ``--version``.

``serve`` runs an echo server (``--broadcast``: a relay to every client) and
prints the URL it listens on. ``connect`` is an interactive session like
wscat: each line read from stdin is sent as a text message (``--binary``: as
hex-decoded binary; ``--file``: a file as one binary message first), each
message received is printed on stdout (``--json`` pretty-prints, ``--timings``
stamps, ``--raw`` shows the frames the session can see), status lines go to
stderr. End of input (Ctrl-D, or the end of a pipe) closes the connection
cleanly once the server has read everything sent (a ping answered after the
last message), and what the server sent before its close frame is printed.

Exit codes: 0 success or normal close, 1 a connection or runtime failure,
2 a usage mistake (bad URL, bad option), 130 interrupted by Ctrl-C. Errors are
one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import ssl
import sys
import threading
import time
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
    connect.add_argument(
        "--proxy",
        help="http://[user:pass@]host:port CONNECT proxy, or socks5h:// socks5:// socks4a:// socks4:// (the socks extra);"
        " default: from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY",
    )
    connect.add_argument("--no-proxy", action="store_true", help="ignore proxy environment variables")
    connect.add_argument("--cafile", help="CA bundle (PEM) to verify the server with, instead of certifi's")
    connect.add_argument("--insecure", action="store_true", help="do not verify the server's TLS certificate")
    connect.add_argument("--timeout", type=float, default=10.0, help="seconds to open the connection (default 10)")
    connect.add_argument(
        "--wait", type=float, default=0.0, help="after end of input, keep printing messages up to SECONDS before closing (default 0)"
    )
    connect.add_argument("--binary", action="store_true", help="send each input line as binary, written in hex ('00ff 10')")
    connect.add_argument(
        "--file", action="append", default=[], metavar="FILE", help="send FILE's bytes as one binary message first (repeatable)"
    )
    connect.add_argument(
        "--ping", type=float, nargs="?", const=0.0, metavar="SECONDS",
        help="ping once connected (every SECONDS if given; put it after the URL) and print the round-trip time",
    )  # fmt: skip
    connect.add_argument("--timings", action="store_true", help="stamp each message with the seconds since the connection opened")
    connect.add_argument("--json", action="store_true", help="pretty-print text messages that are JSON")
    connect.add_argument(
        "--raw", action="store_true", help="show frames: messages both ways, pings sent and their pongs, close frames"
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


def _read_files(paths: List[str]) -> List[bytes]:
    """The contents of the ``--file`` arguments, read before connecting (a bad path is a usage error)."""
    contents = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                contents.append(f.read())
        except OSError as exc:
            raise UsageError(f"cannot read --file {path!r}: {exc.strerror or exc}") from None
    return contents


class _Output:
    """What ``connect`` prints: messages on stdout, status lines on stderr, one line at a time.

    ``--timings`` stamps every line with the seconds since the connection
    opened, ``--json`` pretty-prints text that parses as JSON, ``--raw`` prints
    frame lines (``> `` sent, ``< `` received) instead of bare messages.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        self.timings, self.pretty, self.raw = args.timings, args.json, args.raw
        self.opened = time.monotonic()
        self._lock = threading.Lock()

    def _print(self, text: str, *, status: bool = False) -> None:
        stamp = f"[{time.monotonic() - self.opened:8.3f}] " if self.timings else ""
        with self._lock:
            print(stamp + text, file=sys.stderr if status else sys.stdout, flush=True)

    def _payload(self, message: Union[str, bytes]) -> str:
        """A message as printed: text as is (or as indented JSON), binary as hex."""
        if isinstance(message, bytes):
            return message.hex() if self.raw else f"[binary {len(message)} bytes] {message.hex()}"
        if self.pretty:
            try:
                return json.dumps(json.loads(message), indent=2, ensure_ascii=False)
            except ValueError:
                pass
        return message

    def _frame_line(self, direction: str, message: Union[str, bytes]) -> str:
        """A message as ``--raw`` prints it: ``< text 5 hello`` (the size in bytes, as on the wire)."""
        if isinstance(message, bytes):
            return f"{direction} binary {len(message)} {self._payload(message)}"
        return f"{direction} text {len(message.encode('utf-8', 'surrogatepass'))} {self._payload(message)}"

    def received(self, message: Union[str, bytes]) -> None:
        """A message from the server."""
        self._print(self._frame_line("<", message) if self.raw else self._payload(message))

    def sent(self, message: Union[str, bytes]) -> None:
        """A message about to be sent (printed with ``--raw`` only)."""
        if self.raw:
            self._print(self._frame_line(">", message))

    def ping(self, payload: bytes) -> None:
        """A ping about to be sent (printed with ``--raw`` only)."""
        if self.raw:
            self._print(f"> ping {len(payload)} {payload.hex()}")

    def pong(self, payload: bytes, seconds: float, *, show: bool) -> None:
        """The pong answering a ping (``--raw`` always prints it; otherwise only if ``show``)."""
        rtt = f"{seconds * 1000:.3f} ms"
        if self.raw:
            self._print(f"< pong {len(payload)} {payload.hex()} ({rtt})")
        elif show:
            self._print(f"pong after {rtt}", status=True)

    def closing(self, code: int) -> None:
        """Our close frame (printed with ``--raw`` only)."""
        if self.raw:
            self._print(f"> close {code}")

    def closed(self, code: int, reason: str) -> None:
        """The end of the session: the server's close frame with ``--raw``, and the status line."""
        if self.raw:
            self._print(f"< close {code} {reason}".rstrip() if code != 1006 else "< (no close frame: the connection dropped)")
        self._print(f"disconnected ({code}{' ' + reason if reason else ''})", status=True)

    def status(self, text: str) -> None:
        """A status line on stderr."""
        self._print(text, status=True)


def run_connect(args: argparse.Namespace) -> int:
    """``simplews connect URL``: send stdin lines, print received messages."""
    from .client import connect, parse_uri
    from .exceptions import ConnectionClosed, InvalidURI, WebSocketError
    from .handshake import redact_url

    try:
        parse_uri(args.url)
    except InvalidURI as exc:
        raise UsageError(str(exc)) from None
    if args.ping is not None and args.ping < 0:
        raise UsageError(f"--ping {args.ping:g} is negative")
    headers = _parse_headers(args.header)
    files = _read_files(args.file)
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
    except InvalidURI as exc:  # e.g. a bad --proxy, or a SOCKS proxy without the socks extra
        raise UsageError(str(exc)) from None
    except (WebSocketError, OSError) as exc:
        _error(f"cannot connect to {redact_url(args.url)}: {exc}")
        return EXIT_FAILURE
    out = _Output(args)
    out.status(f"connected to {redact_url(args.url)}" + (f" (subprotocol {ws.subprotocol})" if ws.subprotocol else ""))
    done = threading.Event()
    session = _Session(ws, out, args, done)
    # stdin may block forever: that thread is a daemon, left behind at exit; the pinger is joined
    threading.Thread(target=session.send_input, args=(files,), name="simplews-cli-stdin", daemon=True).start()
    pinger = None
    if args.ping is not None:
        pinger = threading.Thread(target=session.ping_loop, args=(args.ping,), name="simplews-cli-ping", daemon=True)
        pinger.start()
    try:
        for message in ws:
            out.received(message)
    except ConnectionClosed:
        pass
    except KeyboardInterrupt:
        ws.close(1000, "interrupted")
        return EXIT_INTERRUPTED
    finally:
        done.set()
        if pinger is not None:
            pinger.join(5)
    code, reason = ws.close_code or 1006, ws.close_reason or ""
    out.closed(code, reason)
    return EXIT_OK if code in (1000, 1001) else EXIT_FAILURE


class _Session:
    """The sending side of ``connect``: input lines, files, pings, and the close at end of input."""

    def __init__(self, ws: Connection, out: _Output, args: argparse.Namespace, done: threading.Event) -> None:
        self.ws, self.out, self.done = ws, out, done
        self.binary, self.wait, self.timeout = args.binary, args.wait, args.timeout

    def send_input(self, files: List[bytes]) -> None:
        """Send the files, then each stdin line (without its newline); close cleanly at end of input.

        Before closing, a ping answered by the server shows it has read every
        message (a server answers frames in order), so replies it sends after
        reading them are not cut off by our close; then it waits up to
        ``--wait`` seconds (less if the connection ends meanwhile).
        """
        from .exceptions import ConnectionClosed

        try:
            for data in files:
                self._send(data)
            for number, line in enumerate(sys.stdin, 1):
                line = line.rstrip("\r\n")
                if not self.binary:
                    self._send(line)
                    continue
                try:
                    self._send(bytes.fromhex(line))
                except ValueError:
                    self.out.status(f"stdin line {number} is not hex; not sent: {line[:40]!r}")
            self._ping(show=False)  # the server has read all of it once this pong is back
        except ConnectionClosed:
            return
        except (OSError, ValueError) as exc:  # stdin closed or unreadable
            self.out.status(f"stdin: {exc}")
        if self.wait > 0:
            self.done.wait(self.wait)
        self.out.closing(1000)
        self.ws.close(1000, "")

    def _send(self, message: Union[str, bytes]) -> None:
        self.out.sent(message)
        self.ws.send(message)

    def _ping(self, *, show: bool) -> None:
        """Send a ping and wait (up to ``--timeout``) for its pong; print the round-trip time if ``show``."""
        payload = os.urandom(4)
        self.out.ping(payload)
        started = time.monotonic()
        answered = self.ws.ping(payload).wait(self.timeout)
        if self.ws.closed:  # the wait also ends when the connection does
            return
        if answered:
            self.out.pong(payload, time.monotonic() - started, show=show)
        elif show:
            self.out.status(f"no pong within {self.timeout:g} s")

    def ping_loop(self, interval: float) -> None:
        """``--ping``: one ping, or one every ``interval`` seconds until the session ends."""
        from .exceptions import ConnectionClosed

        try:
            while not self.done.is_set():
                self._ping(show=True)
                if not interval or self.done.wait(interval):
                    return
        except ConnectionClosed:
            pass
