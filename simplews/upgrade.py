"""The opening handshake's policy, in both roles: what a server accepts, what a client asks and checks.

:mod:`simplews.handshake` builds and parses HTTP; this module decides. A
server's :class:`ServerPolicy` checks a request (RFC 6455 section 4.2.1),
its ``Origin``, chooses the subprotocol and the extension and builds the 101.
A client's :class:`ClientHandshake` builds the request and checks the
response it gets (RFC 6455 section 4.2.2), extensions included. No sockets.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import logging
import sys
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence, Tuple, Union

from . import handshake
from .exceptions import InvalidHandshake, NegotiationError
from .handshake import Headers, Request, Response, redact_url
from .hooks import as_hooks, first_answer

if TYPE_CHECKING:  # pragma: no cover
    from .deflate import DeflateConfig, PerMessageDeflate
    from .forwarded import TrustedProxies
    from .options import ClientOptions, ServerOptions
    from .origins import OriginPolicy

__all__ = ["Accepted", "ServerPolicy", "ClientHandshake", "user_agent", "as_response"]


def user_agent() -> str:
    """The default User-Agent: ``simplews/<version> Python/<x.y>``."""
    from . import __version__

    return f"simplews/{__version__} Python/{sys.version_info[0]}.{sys.version_info[1]}"


def _deflate_config(compression: Any, *, is_client: bool) -> Optional[DeflateConfig]:
    """The checked permessage-deflate settings of a ``compression=`` option, ``None`` when off."""
    if compression is None:
        return None
    from .deflate import resolve_config  # on first use: zlib and the extension grammar cost import time

    return resolve_config(compression, is_client=is_client)


@dataclasses.dataclass
class Accepted:
    """What a server answers to a request it accepts."""

    response: Response
    subprotocol: Optional[str]
    extension: Optional[PerMessageDeflate]


Hooks = List[Callable[..., Any]]


def as_response(answer: Union[Response, Tuple[int, Any, Any]]) -> Response:
    """A hook's answer, a :class:`Response` or a ``(status, headers, body)`` tuple, as a :class:`Response`."""
    if isinstance(answer, Response):
        return answer
    status, headers, body = answer
    if isinstance(body, str):
        body = body.encode("utf-8")
    return Response(int(status), Headers(headers or []), bytes(body or b""))


class ServerPolicy:
    """Which upgrade requests a server accepts, with what, and what every answer carries.

    In the order a request meets them: the peer a PROXY protocol line may come
    from (:meth:`admits_proxy`), the client's address (:meth:`client_address`),
    the ``process_request`` hooks then the router's (:meth:`answer`), the
    RFC 6455 checks, ``origins``, subprotocol and extension (:meth:`accept`),
    and last the ``Server`` header and the ``process_response`` hooks
    (:meth:`finish`).
    """

    def __init__(self, options: ServerOptions) -> None:
        self.logger: Any = options.logger or logging.getLogger("simplews")
        self.origins: Optional[OriginPolicy] = None
        if options.origins is not None:
            from .origins import OriginPolicy  # on first use, as the other policies' code

            self.origins = OriginPolicy(options.origins)
        self.subprotocols = list(options.subprotocols or [])
        self.select_subprotocol = options.select_subprotocol
        self.deflate = _deflate_config(options.compression, is_client=False)
        self.request_hooks = as_hooks(options.process_request)
        self.route_hook: Optional[Callable[[Request], Optional[Response]]] = None
        self.response_hooks = as_hooks(options.process_response)
        self.server_header = options.server_header
        self.proxy_protocol = options.proxy_protocol
        self.trusted: Optional[TrustedProxies] = None
        if options.trusted_proxies is not None:
            from .forwarded import TrustedProxies

            self.trusted = TrustedProxies(options.trusted_proxies)
        self.forwarded_header = options.forwarded_header

    # --- who the client is -------------------------------------------------------------

    def admits_proxy(self, peer: Optional[Tuple[str, int]]) -> bool:
        """Whether ``peer`` may send a PROXY protocol line (any peer unless ``trusted_proxies`` says which)."""
        if self.trusted is None:
            return True
        if peer is None:
            return self.trusted.unix
        try:
            return ipaddress.ip_address(peer[0]) in self.trusted
        except ValueError:
            return False

    def client_address(
        self, peer: Optional[Tuple[str, int]], proxied: Optional[Tuple[str, int]], headers: Headers
    ) -> Optional[Tuple[str, int]]:
        """The client's address: the PROXY line's source or the socket's peer, then what trusted proxies' headers say."""
        address = proxied if proxied is not None else peer
        if self.trusted is None:
            return address
        from .forwarded import client_address

        return client_address(address, headers, self.trusted, header=self.forwarded_header)

    # --- the answer --------------------------------------------------------------------

    def answer(self, request: Request) -> Optional[Response]:
        """The answer of the first request hook that answers (the router's last), if any; a 500 if one raises."""
        hooks = self.request_hooks if self.route_hook is None else [*self.request_hooks, self.route_hook]
        try:
            answer = first_answer(hooks, request)
            return None if answer is None else as_response(answer)
        except Exception:  # a hook that raised, or answered something that is not a response
            self.logger.exception("process_request failed for %s %s", request.method, redact_url(request.path))
            raise InvalidHandshake("internal server error", status=500) from None

    def accept(self, request: Request) -> Accepted:
        """Check ``request`` and build the 101; raise :class:`InvalidHandshake` with the status to answer."""
        key = handshake.check_request(request)
        origin = request.headers.get("Origin")
        if self.origins is not None and not self.origins.allows(origin):
            shown = origin if origin is None else redact_url(origin)
            raise InvalidHandshake(f"origin {shown!r} not allowed", status=403)
        offered = handshake.parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol"))
        subprotocol = request.subprotocol = self._choose_subprotocol(request, offered)
        extension = header = None
        if self.deflate is not None:
            values = request.headers.get_all("Sec-WebSocket-Extensions")
            if values:
                from . import deflate

                agreed = deflate.server_accept(values, self.deflate)
                if agreed is not None:
                    header, extension = agreed
        response = handshake.accept_response(key, subprotocol=subprotocol, extensions=header)
        return Accepted(response, subprotocol, extension)

    def finish(self, request: Optional[Request], response: Response) -> Response:
        """The response to send: with the ``Server`` header, then as the ``process_response`` hooks leave it.

        A hook may change ``response`` in place or return another one (which
        the next hook gets). A 101 stays the handshake's: a hook may replace it
        with a refusal, but not change its handshake headers, and no other
        response may become a 101. If a hook raises or breaks that rule, the
        client gets a 500. There is no ``request`` when it could not be parsed:
        then no hook runs.
        """
        response = dataclasses.replace(response, headers=Headers(response.headers))  # a hook's answer may be shared
        if self.server_header is not None and "Server" not in response.headers:
            response.headers.add("Server", self.server_header)
        if request is None or not self.response_hooks:
            return response
        handshake_headers = [response.headers.get_all(name) for name in handshake.ACCEPT_HEADERS]
        current = response
        try:
            for hook in self.response_hooks:
                answer = hook(request, current)
                if answer is not None:
                    current = as_response(answer)
            if current.status == 101 and (
                response.status != 101 or [current.headers.get_all(n) for n in handshake.ACCEPT_HEADERS] != handshake_headers
            ):
                raise ValueError("a 101 whose handshake headers are not the server's")
        except Exception:
            self.logger.exception("process_response failed for %s %s", request.method, redact_url(request.path))
            current = handshake.reject_response(InvalidHandshake("internal server error", status=500))
            if self.server_header is not None:
                current.headers.add("Server", self.server_header)
        return current

    def _choose_subprotocol(self, request: Request, offered: List[str]) -> Optional[str]:
        """The subprotocol to accept, from the callback or the preference list."""
        if self.select_subprotocol is None:
            return handshake.select_subprotocol(offered, self.subprotocols)
        try:
            chosen = self.select_subprotocol(request, offered)
        except Exception:
            self.logger.exception("select_subprotocol failed for %s", redact_url(request.path))
            raise InvalidHandshake("internal server error", status=500) from None
        if chosen is not None and chosen not in offered:
            raise NegotiationError(f"select_subprotocol chose {chosen!r}, which the client did not offer")
        return chosen


class ClientHandshake:
    """One client handshake: the request to send, then the checks of the response."""

    def __init__(self, host: str, resource: str, options: ClientOptions, headers: Optional[Headers], auth: Any = None) -> None:
        extra = Headers(headers) if headers is not None else Headers()
        if auth is not None and "Authorization" not in extra:
            cred = f"{auth[0]}:{auth[1] or ''}".encode()
            extra.add("Authorization", "Basic " + base64.b64encode(cred).decode("ascii"))
        self.subprotocols: Optional[Sequence[str]] = options.subprotocols
        self.deflate = _deflate_config(options.compression, is_client=True)
        offer = None
        if self.deflate is not None:
            from . import deflate

            offer = deflate.client_offer(self.deflate)
        self.key = handshake.generate_key()
        agent = user_agent() if options.user_agent == "default" else options.user_agent
        self.request = handshake.build_request(
            host,
            resource,
            self.key,
            subprotocols=self.subprotocols,
            extensions=offer,
            origin=options.origin,
            user_agent=None if "User-Agent" in extra else agent,
            extra_headers=extra,
        )

    def sent_request(self) -> Request:
        """What we sent, as a :class:`Request` (``ws.request`` on the client side)."""
        try:
            return handshake.parse_request(self.request)
        except InvalidHandshake:
            return Request("/", Headers())

    def check(self, response: Response) -> Any:
        """Check the server's answer; return ``(subprotocol, extension)`` or raise :class:`InvalidHandshake`."""
        subprotocol = handshake.check_response(response, self.key, subprotocols=self.subprotocols)
        extension = None
        values = response.headers.get_all("Sec-WebSocket-Extensions")
        if values:
            if self.deflate is None:
                raise NegotiationError("server accepted an extension that was not offered")
            from . import deflate

            extension = deflate.client_accept(values, self.deflate)
        return subprotocol, extension

