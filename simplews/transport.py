"""Opening a client's stream: TCP (IPv4/IPv6), Unix sockets, HTTP(S) CONNECT and SOCKS proxies, TLS, in one deadline.

Everything here runs on the thread that opens the connection; :class:`Cancel`
lets another thread (``Client.stop()``) abort it at any point.
"""

from __future__ import annotations

import base64
import errno
import ipaddress
import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, Dict, Iterable, Optional, Set, Tuple
from urllib.parse import unquote, urlsplit

from .exceptions import (
    ConnectError,
    ConnectionRefused,
    HostNotFound,
    InvalidHandshake,
    InvalidURI,
    OpenTimeout,
    ProxyError,
    TLSError,
    WebSocketTimeout,
)
from .handshake import Headers, parse_response, redact_url
from .stream import Stream, read_head

if TYPE_CHECKING:  # pragma: no cover
    import ssl  # imported on first TLS use: it costs milliseconds of import time

    from .options import ClientOptions, SocketOption

__all__ = [
    "Cancel", "shutdown", "discard", "open_tcp", "open_stream", "new_unix_socket",
    "default_ssl_context", "remaining", "proxy_from_env",
]


class Cancel:
    """Lets another thread abort the blocking socket calls of a connection being opened.

    Sockets are tracked while they open; :meth:`cancel` shuts them down, which
    wakes a blocked ``connect``, ``recv`` or TLS handshake at once (closing the
    descriptor from another thread would not, and could hit a reused one).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._socks: Set[socket.socket] = set()
        self.cancelled = False

    def track(self, sock: socket.socket) -> None:
        """Watch ``sock``; raise :class:`ConnectError` if the attempt is already cancelled."""
        with self._lock:
            if self.cancelled:
                raise ConnectError("connection attempt cancelled")
            self._socks.add(sock)

    def untrack(self, sock: socket.socket) -> None:
        """Stop watching ``sock``."""
        with self._lock:
            self._socks.discard(sock)

    def cancel(self) -> None:
        """Abort every tracked socket and any tracked later."""
        with self._lock:
            self.cancelled = True
            socks = list(self._socks)
        for sock in socks:
            shutdown(sock)


def shutdown(sock: socket.socket) -> None:
    """Shut a socket down in both directions (waking any thread blocked on it), ignoring errors."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def discard(sock: socket.socket) -> None:
    """Shut a socket down and close it, ignoring errors."""
    shutdown(sock)
    try:
        sock.close()
    except OSError:
        pass


def remaining(deadline: Optional[float]) -> Optional[float]:
    """Seconds left before ``deadline``; raise :class:`OpenTimeout` if none are."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise OpenTimeout("timed out while opening the connection")
    return left


def open_tcp(
    host: str,
    port: int,
    deadline: Optional[float],
    cancel: Optional[Cancel] = None,
    *,
    source_address: Optional[Tuple[str, int]] = None,
    socket_options: Iterable[SocketOption] = (),
) -> socket.socket:
    """Connect a TCP socket to ``host:port``, trying every address, with clear errors.

    ``socket_options`` are set and ``source_address`` is bound before each
    address is tried (an address of another family than ``source_address``
    fails and the next is tried).
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostNotFound(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    except UnicodeError as exc:  # the IDNA codec refuses the name (e.g. a label over 63 characters)
        raise HostNotFound(f"cannot resolve host {host!r}: invalid host name ({exc})") from exc
    last: Optional[OSError] = None
    for family, type_, proto, _, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            if cancel is not None:
                cancel.track(sock)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # before the caller's: they may turn it off
            for level, option, value in socket_options:
                sock.setsockopt(level, option, value)
            if source_address is not None:
                sock.bind(source_address)
            sock.settimeout(remaining(deadline))
            sock.connect(addr)
        except socket.timeout as exc:
            sock.close()
            raise OpenTimeout(f"timed out connecting to {host}:{port}") from exc
        except OSError as exc:
            sock.close()
            last = exc
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if isinstance(last, ConnectionRefusedError) or getattr(last, "errno", None) == errno.ECONNREFUSED:
        raise ConnectionRefused(f"connection refused by {host}:{port}") from last
    raise ConnectError(f"cannot connect to {host}:{port}: {last}") from last


def default_ssl_context() -> ssl.SSLContext:
    """A client TLS context verifying certificates and host names with certifi's CA bundle."""
    import ssl

    import certifi  # deferred: keeps ``import simplews`` fast

    return ssl.create_default_context(cafile=certifi.where())


def start_tls(stream: Stream, context: ssl.SSLContext, server_hostname: str, deadline: Optional[float]) -> None:
    """Run the client TLS handshake over ``stream`` (SNI and host name check on ``server_hostname``)."""
    from .tls import TLS

    try:
        stream.start_tls(TLS(context, server_side=False, server_hostname=server_hostname), deadline)
    except WebSocketTimeout:
        raise OpenTimeout(f"timed out in the TLS handshake with {server_hostname}") from None
    except TLSError:
        raise
    except OSError as exc:
        raise TLSError(f"TLS handshake with {server_hostname} failed: {exc.strerror or exc}") from exc


def open_stream(uri: Any, options: ClientOptions, deadline: Optional[float], cancel: Optional[Cancel]) -> Stream:
    """The stream to ``uri``: a given socket, a Unix socket, a proxy tunnel or TCP, then TLS for ``wss``."""
    sock = options.sock
    if sock is None:
        if options.unix_socket is not None:
            sock = _open_unix(options.unix_socket, deadline, cancel)
        else:
            proxy = proxy_from_env(uri) if options.proxy == "auto" else options.proxy
            if proxy and proxy.lower().startswith("socks"):
                from .socks import open_socks_tunnel  # imported on first use, like python-socks itself

                sock = open_socks_tunnel(proxy, uri.host, uri.port, deadline, cancel, **tcp_options(options))
            elif proxy:
                return _open_via_proxy(proxy, uri, options, deadline, cancel)
            else:
                sock = open_tcp(uri.host, uri.port, deadline, cancel, **tcp_options(options))
    elif hasattr(sock, "cipher"):  # an ssl.SSLSocket
        raise TypeError("sock must be a plain connected socket (simplews runs TLS itself for wss://)")
    return _secure(Stream(sock), uri, options, deadline)


def tcp_options(options: ClientOptions) -> Dict[str, Any]:
    """The keywords of :func:`open_tcp` that ``options`` set: the local end of the socket."""
    return {"source_address": options.source_address, "socket_options": tuple(options.socket_options or ())}


def _secure(stream: Stream, uri: Any, options: ClientOptions, deadline: Optional[float]) -> Stream:
    """Run TLS over ``stream`` for ``wss://`` (closing it on failure); return it."""
    try:
        if uri.secure:
            context = options.ssl_context or default_ssl_context()
            start_tls(stream, context, options.server_hostname or uri.host, deadline)
        return stream
    except BaseException:
        stream.shutdown()
        stream.close()
        raise


def new_unix_socket() -> socket.socket:
    """A new Unix stream socket; ``OSError`` where the platform has none (no ``socket.AF_UNIX``)."""
    family = getattr(socket, "AF_UNIX", None)
    if family is None:
        raise OSError(errno.EAFNOSUPPORT, "Unix sockets are not available on this platform")
    return socket.socket(family, socket.SOCK_STREAM)


def _open_unix(path: str, deadline: Optional[float], cancel: Optional[Cancel]) -> socket.socket:
    """Connect to a Unix socket (where the platform has them)."""
    try:
        sock = new_unix_socket()
    except OSError as exc:
        raise ConnectError(f"cannot connect to Unix socket {path}: {exc.strerror}") from exc
    try:
        if cancel is not None:
            cancel.track(sock)
        sock.settimeout(remaining(deadline))
        sock.connect(path)
        return sock
    except socket.timeout as exc:
        sock.close()
        raise OpenTimeout("timed out connecting to the Unix socket") from exc
    except ConnectionRefusedError as exc:
        sock.close()
        raise ConnectionRefused(f"connection refused by Unix socket {path}") from exc
    except OSError as exc:
        sock.close()
        if isinstance(exc, ConnectError):
            raise
        raise ConnectError(f"cannot connect to Unix socket {path}: {exc.strerror or exc}") from exc


# --- proxies ----------------------------------------------------------------------------


def proxy_from_env(uri: Any) -> Optional[str]:
    """The proxy URL the environment sets for ``uri``, honouring NO_PROXY (as curl does)."""

    def env(name: str) -> Optional[str]:
        return os.environ.get(name.lower()) or os.environ.get(name.upper()) or None

    proxy = env("https_proxy") if uri.secure else env("http_proxy")
    proxy = proxy or env("all_proxy")
    if not proxy or _no_proxy_matches(env("no_proxy") or "", uri.host, uri.port):
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


def _open_via_proxy(proxy: str, uri: Any, options: ClientOptions, deadline: Optional[float], cancel: Optional[Cancel]) -> Stream:
    """A stream to ``uri`` through an ``http://`` or ``https://`` CONNECT proxy (TLS to the proxy, then to the server)."""
    try:
        parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
        secure = parts.scheme == "https"
        pport = parts.port or (443 if secure else 8080)
    except ValueError:
        raise InvalidURI(f"invalid proxy URL {redact_url(proxy)!r}: bad host or port") from None
    if parts.scheme not in ("http", "https", "") or not parts.hostname:
        raise InvalidURI(
            f"unsupported proxy {parts.scheme}:// (use http://, https://, socks5h://, socks5://, socks4a:// or socks4://)"
        )
    name = f"proxy {parts.hostname}:{pport}"
    try:
        sock = open_tcp(parts.hostname, pport, deadline, cancel, **tcp_options(options))
    except ConnectError as exc:  # same class, but say it was the proxy that failed
        raise type(exc)(f"{name}: {exc}") from exc
    stream = Stream(sock)
    try:
        if secure:
            start_tls(stream, options.proxy_ssl_context or default_ssl_context(), parts.hostname, deadline)
        target = uri.host_header if ":" in uri.host_header.rsplit("]", 1)[-1] else f"{uri.host_header}:{uri.port}"
        from .upgrade import user_agent

        headers = Headers([("Host", target), ("User-Agent", user_agent())])
        if parts.username:
            cred = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers.add("Proxy-Authorization", "Basic " + base64.b64encode(cred.encode()).decode())
        try:
            stream.write([f"CONNECT {target} HTTP/1.1\r\n{headers.serialize()}\r\n".encode("latin-1")], deadline)
            head, extra = read_head(stream, 64 * 1024, deadline)
            response = parse_response(head)
        except (InvalidHandshake, OSError, WebSocketTimeout) as exc:
            if isinstance(exc, (WebSocketTimeout, OpenTimeout)):
                raise OpenTimeout(f"{name} did not answer the CONNECT in time") from exc
            raise ProxyError(f"{name} failed the CONNECT: {exc}") from exc
        if response.status // 100 != 2:
            hint = {407: " (proxy authentication required)", 401: " (proxy authentication failed)"}.get(response.status, "")
            raise ProxyError(f"{name} refused CONNECT to {target}: HTTP {response.status} {response.reason}{hint}".replace("  ", " "))
        if extra:
            raise ProxyError("proxy sent data before the tunnel was open")
    except BaseException:
        stream.shutdown()
        stream.close()
        raise
    return _secure(stream, uri, options, deadline)
