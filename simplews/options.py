"""The options of connections, clients and servers, each declared once with its default.

:class:`ConnectionOptions` holds what every open connection needs, on either
side; :class:`ClientOptions` and :class:`ServerOptions` add what only
:func:`~simplews.connect` / :class:`~simplews.Client` or
:class:`~simplews.Server` use. The entry points take these as keyword
arguments (an unknown or misspelled one is a :class:`TypeError` at that call),
or as one object, ``options=ClientOptions(...)``, which a type checker checks
field by field.
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import socket
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterable, Optional, Sequence, Tuple, Type, TypeVar, Union

from . import __version__
from .handshake import DEFAULT_MAX_HEADER_SIZE
from .listener import DEFAULT_MAX_PENDING_HANDSHAKES
from .protocol import DEFAULT_FRAME_SIZE, DEFAULT_MAX_FRAGMENTS, DEFAULT_MAX_MESSAGE_SIZE, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import ssl

    from .deflate import DeflateConfig
    from .handshake import HeaderLike, Request

__all__ = ["ConnectionOptions", "ClientOptions", "ServerOptions", "DEFAULT_THREAD_STACK_SIZE", "SocketOption", "new_protocol"]

#: one ``setsockopt(level, option, value)``, e.g. ``(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)``
SocketOption = Tuple[int, int, Union[int, bytes]]

#: Stack size for server connection threads. Only touched pages are resident, so
#: an idle connection costs about 43 KiB resident whatever this is (measured with
#: 1,000 connections); what it bounds is address space: about 1.8 MiB per
#: connection at 512 KiB against 9.5 MiB with the usual 8 MiB default, which
#: matters on 32-bit boards. 512 KiB is the smallest power of two at which
#: handler code recursing to Python's default recursion limit gets a
#: RecursionError rather than a crash on CPython 3.9 and 3.10 (256 KiB crashes).
DEFAULT_THREAD_STACK_SIZE = 512 * 1024

T = TypeVar("T", bound="ConnectionOptions")


@dataclasses.dataclass(frozen=True)
class ConnectionOptions:
    """What an open connection needs, on either side (seconds, bytes; ``None``: no limit / off).

    ``ping_interval``: a keepalive ping this often; ``ping_timeout``: how long
    the peer may stay silent after one (no bytes from it, and none of ours
    drained) before the connection fails with 1011. ``send_timeout``: how long
    what we send may wait without the peer taking a byte of it (a peer that
    reads, but too slowly or not at all) before the connection fails with 1011.
    ``close_timeout``: how long the closing handshake may take. Limits:
    ``max_message_size`` (incoming, after decompression, 1009 beyond),
    ``max_fragments`` (frames per incoming message, 1009 beyond),
    ``frame_size`` (outgoing messages are fragmented above it), ``max_queue``
    (messages read ahead while nobody takes them). ``compression``:
    ``"deflate"`` (permessage-deflate), ``None`` (off) or a
    :class:`~simplews.DeflateConfig`. ``logger``: where this connection logs
    (a :class:`logging.Logger` or :class:`logging.LoggerAdapter`; default
    ``logging.getLogger("simplews")``).
    """

    max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE
    max_fragments: Optional[int] = DEFAULT_MAX_FRAGMENTS
    frame_size: Optional[int] = DEFAULT_FRAME_SIZE
    max_queue: Optional[int] = 32
    ping_interval: Optional[float] = 20.0
    ping_timeout: Optional[float] = 20.0
    send_timeout: Optional[float] = 30.0
    close_timeout: Optional[float] = 10.0
    compression: Union[str, DeflateConfig, None] = "deflate"
    logger: Union[logging.Logger, logging.LoggerAdapter, None] = None

    def __post_init__(self) -> None:
        """Refuse values no connection could use."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{field.name} must not be negative, not {value!r}")
        if self.frame_size is not None and self.frame_size < 1:
            raise ValueError("frame_size must be at least 1 byte (or None for unfragmented messages)")

    @classmethod
    def build(cls: Type[T], caller: str, options: Dict[str, Any], base: Optional[T] = None) -> T:
        """Options from keyword arguments (over ``base``), with a :class:`TypeError` naming ``caller`` for an unknown one."""
        known = {field.name for field in dataclasses.fields(cls)}
        for name in options:
            if name not in known:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"{caller}() got an unexpected keyword argument {name!r}{hint}")
        if base is not None:
            if not isinstance(base, cls):
                raise TypeError(f"{caller}() takes options={cls.__name__}(...), not {type(base).__name__}")
            return dataclasses.replace(base, **options)
        return cls(**options)

    def connection_options(self) -> ConnectionOptions:
        """Just the options an open connection uses."""
        return ConnectionOptions(**{f.name: getattr(self, f.name) for f in dataclasses.fields(ConnectionOptions)})


@dataclasses.dataclass(frozen=True)
class ClientOptions(ConnectionOptions):
    """Options of :func:`~simplews.connect` and :class:`~simplews.Client`, besides :class:`ConnectionOptions`.

    Handshake: ``subprotocols`` to offer, ``origin``, extra ``headers`` (a
    mapping or pairs), ``user_agent`` (``"default"``: ``simplews/<version>
    Python/<x.y>``; ``None``: none), ``max_header_size`` of the response.
    Transport: ``ssl_context`` (default: certificates and host names checked
    with certifi's CA bundle), ``server_hostname`` (SNI and the name checked),
    ``proxy`` (``"auto"``: from ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``;
    ``None``: none; or ``http://[user:pass@]host:port``, or ``https://...`` with
    TLS to the proxy, checked with ``proxy_ssl_context``), ``unix_socket`` or
    ``sock`` (a connected socket) instead of TCP; ``source_address``
    (``(host, port)`` to bind before connecting, port 0 for any) and
    ``socket_options`` (``(level, option, value)`` triples set on the socket
    before it connects) for the TCP socket opened (to the proxy, if any).
    ``open_timeout`` covers TCP, proxy, TLS and handshake together. Redirects
    are followed up to ``max_redirects`` times. ``headers`` may also be a
    function returning the headers, called once per connection attempt (before
    its redirects): fresh tokens on every reconnection.
    """

    subprotocols: Optional[Sequence[str]] = None
    origin: Optional[str] = None
    headers: Union[HeaderLike, Callable[[], HeaderLike], None] = None
    user_agent: Optional[str] = "default"
    open_timeout: Optional[float] = 10.0
    max_header_size: Optional[int] = DEFAULT_MAX_HEADER_SIZE
    ssl_context: Optional[ssl.SSLContext] = None
    server_hostname: Optional[str] = None
    proxy: Optional[str] = "auto"
    proxy_ssl_context: Optional[ssl.SSLContext] = None
    unix_socket: Optional[str] = None
    sock: Optional[socket.socket] = None
    max_redirects: int = 5
    # deployment: the local end of the TCP socket
    source_address: Optional[Tuple[str, int]] = None
    socket_options: Optional[Sequence[SocketOption]] = None

    def __post_init__(self) -> None:
        """Refuse values no client could use, before any I/O."""
        super().__post_init__()
        _check_compression(self.compression, is_client=True)


@dataclasses.dataclass(frozen=True)
class ServerOptions(ConnectionOptions):
    """Options of :class:`~simplews.Server`, besides :class:`ConnectionOptions`.

    Where: ``host``/``port`` (``host="::"`` is dual-stack; ``port=0`` any free
    port), or ``unix_socket``, or ``sock`` (a bound socket), ``backlog``;
    ``ssl_context`` for ``wss://``. Handshake policy: ``origins`` (allowed
    ``Origin`` values: exact origins, ``https://*.example.com`` wildcards,
    compiled regexes matched against the whole value, ``None`` to admit
    requests without one), ``subprotocols`` (in
    order of preference) or ``select_subprotocol(request, offered)``,
    ``process_request(request)`` (answer a request itself: pages, health
    checks, 401/403; a sequence is tried in order, the first answer wins),
    ``process_response(request, response)`` (change the response before it is
    sent, 101 included, or return another one; a sequence runs in order),
    ``server_header`` (the ``Server`` header of every response; ``None``: none),
    ``max_header_size`` (431 beyond). Admission: ``max_connections`` (503
    beyond), ``max_pending_handshakes`` (accepting pauses at it),
    ``handshake_timeout`` (slow or silent clients dropped).
    ``thread_stack_size`` of connection threads. Behind a proxy:
    ``proxy_protocol`` (every connection starts with a PROXY protocol v1
    line), ``trusted_proxies`` (addresses, networks or ``"unix"`` of the
    proxies whose ``forwarded_header``, ``"X-Forwarded-For"`` or
    ``"Forwarded"``, is believed; with ``proxy_protocol``, the only peers
    allowed); ``socket_options`` set on every accepted socket.
    """

    host: Optional[str] = "127.0.0.1"
    port: int = 8765
    sock: Optional[socket.socket] = None
    unix_socket: Optional[str] = None
    backlog: int = 128
    ssl_context: Optional[ssl.SSLContext] = None
    subprotocols: Optional[Sequence[str]] = None
    select_subprotocol: Optional[Callable[[Request, Sequence[str]], Optional[str]]] = None
    origins: Optional[Iterable[Any]] = None
    process_request: Any = None
    max_header_size: Optional[int] = DEFAULT_MAX_HEADER_SIZE
    max_connections: Optional[int] = None
    max_pending_handshakes: Optional[int] = DEFAULT_MAX_PENDING_HANDSHAKES
    handshake_timeout: Optional[float] = 10.0
    thread_stack_size: Optional[int] = DEFAULT_THREAD_STACK_SIZE
    # deployment: response hooks, and the client's address behind a proxy
    process_response: Any = None
    server_header: Optional[str] = f"simplews/{__version__}"
    proxy_protocol: bool = False
    trusted_proxies: Optional[Sequence[str]] = None
    forwarded_header: str = "X-Forwarded-For"
    socket_options: Optional[Sequence[SocketOption]] = None

    def __post_init__(self) -> None:
        """Refuse values no server could use."""
        super().__post_init__()
        _check_compression(self.compression, is_client=False)
        if self.forwarded_header.lower() not in ("x-forwarded-for", "forwarded"):
            raise ValueError(f"forwarded_header is 'X-Forwarded-For' or 'Forwarded', not {self.forwarded_header!r}")
        if self.thread_stack_size is not None and self.thread_stack_size < 32768:
            raise ValueError("thread_stack_size must be at least 32 KiB (or None for the interpreter's default)")


def _check_compression(compression: Any, *, is_client: bool) -> None:
    """Check a ``compression=`` setting for one role (the default needs no check, nor the import of deflate)."""
    if compression is not None and compression != "deflate":
        from .deflate import resolve_config

        resolve_config(compression, is_client=is_client)


def new_protocol(options: ConnectionOptions, is_client: bool, extension: Any = None) -> Protocol:
    """A protocol core for one side of a connection, with the limits of ``options``."""
    return Protocol(
        is_client,
        max_message_size=options.max_message_size,
        max_fragments=options.max_fragments,
        frame_size=options.frame_size,
        extension=extension,
    )
