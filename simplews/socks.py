"""SOCKS4, SOCKS4a, SOCKS5 and SOCKS5h proxies, through the optional ``python-socks`` package.

``socks5h://`` and ``socks4a://`` send the target's host name to the proxy, which
resolves it; ``socks5://`` and ``socks4://`` resolve it here and send an address
(curl's meaning of the four schemes). The TCP connection to the proxy is opened
by :func:`~simplews.transport.open_tcp`, so ``open_timeout`` and
:class:`~simplews.transport.Cancel` apply to it as to a direct connection;
``python-socks`` then runs the SOCKS exchange on that socket.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, cast
from urllib.parse import unquote, urlsplit

from .exceptions import ConnectError, ConnectionRefused, HostNotFound, InvalidURI, OpenTimeout, ProxyError
from .handshake import redact_url
from .transport import Cancel, open_tcp, remaining

if TYPE_CHECKING:  # pragma: no cover
    from python_socks import ProxyType

__all__ = ["SOCKS_SCHEMES", "SocksProxy", "parse_socks_url", "open_socks_tunnel"]

#: scheme -> (SOCKS version, whether the proxy resolves the host name)
SOCKS_SCHEMES = {"socks5": (5, False), "socks5h": (5, True), "socks4": (4, False), "socks4a": (4, True)}
DEFAULT_SOCKS_PORT = 1080
EXTRA_HINT = "pip install 'simplews[socks]'"
#: SOCKS5 reply code for "connection refused" (RFC 1928, section 6)
_SOCKS5_REFUSED = 5


class SocksProxy(NamedTuple):
    """A parsed SOCKS proxy URL."""

    scheme: str
    host: str
    port: int
    username: Optional[str]
    password: Optional[str]

    @property
    def version(self) -> int:
        """4 or 5."""
        return SOCKS_SCHEMES[self.scheme][0]

    @property
    def remote_dns(self) -> bool:
        """Whether the proxy resolves the target's host name (``socks5h``, ``socks4a``)."""
        return SOCKS_SCHEMES[self.scheme][1]

    @property
    def name(self) -> str:
        """``socks5h proxy host:port``, for error messages (never the credentials)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme} proxy {host}:{self.port}"


def parse_socks_url(url: str) -> SocksProxy:
    """Parse ``socks5h://[user:password@]host[:port]`` and the like; raise :class:`InvalidURI`."""
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise InvalidURI(f"invalid proxy URL {shown!r}: bad host or port") from None
    scheme = parts.scheme.lower()
    if scheme not in SOCKS_SCHEMES:
        raise InvalidURI(f"unsupported proxy scheme {scheme}:// (use socks5h://, socks5://, socks4a:// or socks4://)")
    if not parts.hostname:
        raise InvalidURI(f"invalid proxy URL {shown!r}: no host")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    _check_credentials(SOCKS_SCHEMES[scheme][0], username, password, shown)
    return SocksProxy(scheme, parts.hostname, port or DEFAULT_SOCKS_PORT, username, password)


def _check_credentials(version: int, username: Optional[str], password: Optional[str], shown: str) -> None:
    """Refuse, before any I/O, credentials the SOCKS exchange cannot carry (RFC 1929: ASCII here, 255 bytes)."""
    for value in (username, password):
        if value is not None and (not value.isascii() or len(value) > 255):
            raise InvalidURI(f"invalid proxy URL {shown!r}: SOCKS credentials must be ASCII, at most 255 characters")
    if version == 5 and username is not None and password is None:
        raise InvalidURI(f"invalid proxy URL {shown!r}: SOCKS5 authentication needs a user name and a password")


def open_socks_tunnel(
    proxy_url: str, host: str, port: int, deadline: Optional[float], cancel: Optional[Cancel] = None, **tcp: Any
) -> socket.socket:
    """Return a socket connected to ``host:port`` through the SOCKS proxy at ``proxy_url``.

    Raises :class:`InvalidURI` before any I/O for a bad proxy URL or when
    ``python-socks`` is not installed; :class:`ProxyError` when the proxy
    refuses (with its reason) or breaks the exchange; :class:`ConnectionRefused`,
    :class:`HostNotFound` or :class:`OpenTimeout` when that is what happened,
    at the proxy or beyond it. ``tcp`` are the keywords of
    :func:`~simplews.transport.open_tcp` for the socket to the proxy
    (``source_address``, ``socket_options``).
    """
    proxy = parse_socks_url(proxy_url)
    proxy_type = _proxy_type(proxy)
    target = _target_address(proxy, host, port)
    try:
        sock = open_tcp(proxy.host, proxy.port, deadline, cancel, **tcp)  # tcp: source address, socket options
    except ConnectError as exc:  # same class, but say it was the proxy that failed
        raise type(exc)(f"{proxy.name}: {exc}") from exc
    try:
        _handshake(sock, proxy, proxy_type, target, port, deadline)
        remaining(deadline)  # each read had the whole time left: the exchange as a whole may not
    except BaseException as exc:
        sock.close()
        if cancel is not None and cancel.cancelled:
            raise ConnectError("connection attempt cancelled") from exc
        if isinstance(exc, OpenTimeout):
            raise OpenTimeout(f"timed out in the SOCKS exchange with the {proxy.name}") from exc
        raise
    return sock


def _proxy_type(proxy: SocksProxy) -> ProxyType:
    """python-socks' name for the proxy's version; :class:`InvalidURI` naming the extra if it is missing."""
    try:
        from python_socks import ProxyType
    except ImportError:
        raise InvalidURI(f"{proxy.scheme}:// proxies need the python-socks package: {EXTRA_HINT}") from None
    return ProxyType.SOCKS5 if proxy.version == 5 else ProxyType.SOCKS4


def _target_address(proxy: SocksProxy, host: str, port: int) -> str:
    """What to ask the proxy for: the host name (remote DNS) or an address resolved here."""
    try:
        ip: Any = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if proxy.version == 4 and (ip is not None and ip.version == 6):
        raise InvalidURI(f"a {proxy.scheme}:// proxy cannot reach the IPv6 address {host} (use socks5h://)")
    if ip is not None or proxy.remote_dns:
        return host
    family = socket.AF_INET if proxy.version == 4 else socket.AF_UNSPEC  # SOCKS4 carries IPv4 only
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostNotFound(f"cannot resolve host {host!r}: {exc.strerror}") from exc
    except UnicodeError as exc:
        raise HostNotFound(f"cannot resolve host {host!r}: invalid host name ({exc})") from exc
    return str(infos[0][4][0])


class _Connected:
    """Hands python-socks the socket already connected to the proxy.

    ``forward=`` (python-socks' proxy chaining) is the one way its sync API takes a
    socket opened by the caller: ours is tracked by :class:`Cancel` and bounded by
    the deadline, which a socket python-socks opened itself would not be.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def connect(self, **_: Any) -> socket.socket:
        return self.sock


def _handshake(
    sock: socket.socket, proxy: SocksProxy, proxy_type: ProxyType, target: str, port: int, deadline: Optional[float]
) -> None:
    """Run the SOCKS exchange on ``sock``, mapping python-socks' errors to ours."""
    import python_socks
    from python_socks.sync import Proxy

    client = Proxy(
        proxy_type,
        proxy.host,
        proxy.port,
        username=proxy.username,
        password=proxy.password if proxy.version == 5 else None,
        rdns=proxy.remote_dns,
        forward=cast(Any, _Connected(sock)),
    )
    shown = f"[{target}]:{port}" if ":" in target else f"{target}:{port}"
    sock.settimeout(remaining(deadline))
    try:
        client.connect(target, port)
    except python_socks.ProxyTimeoutError as exc:
        raise OpenTimeout("timed out") from exc
    except python_socks.ProxyError as exc:
        reason = str(exc) or type(exc).__name__
        if exc.error_code == _SOCKS5_REFUSED:
            raise ConnectionRefused(f"{proxy.name}: connection refused by {shown}") from exc
        if type(exc.__cause__).__name__ == "IncompleteReadError":  # its class is not public
            raise ProxyError(f"{proxy.name} closed the connection during the SOCKS exchange for {shown}") from exc
        raise ProxyError(f"{proxy.name} refused the connection to {shown}: {reason}") from exc
    except (OSError, ValueError) as exc:  # a reset, or a name or credential python-socks cannot encode
        raise ProxyError(f"{proxy.name} failed the SOCKS exchange for {shown}: {exc}") from exc
