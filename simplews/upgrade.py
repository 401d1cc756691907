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
import sys
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

from . import handshake
from .exceptions import InvalidHandshake, NegotiationError
from .handshake import Headers, Request, Response, redact_url

if TYPE_CHECKING:  # pragma: no cover
    from .deflate import DeflateConfig, PerMessageDeflate
    from .options import ClientOptions, ServerOptions

__all__ = ["Accepted", "ServerPolicy", "ClientHandshake", "user_agent"]


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

    response: bytes
    subprotocol: Optional[str]
    extension: Optional[PerMessageDeflate]


class ServerPolicy:
    """Which upgrade requests a server accepts, and with what."""

    def __init__(self, options: ServerOptions) -> None:
        self.origins = None if options.origins is None else set(options.origins)
        self.subprotocols = list(options.subprotocols or [])
        self.select_subprotocol = options.select_subprotocol
        self.deflate = _deflate_config(options.compression, is_client=False)

    def accept(self, request: Request) -> Accepted:
        """Check ``request`` and build the 101; raise :class:`InvalidHandshake` with the status to answer."""
        key = handshake.check_request(request)
        origin = request.headers.get("Origin")
        if self.origins is not None and origin not in self.origins:
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
        response = handshake.build_accept(key, subprotocol=subprotocol, extensions=header)
        return Accepted(response, subprotocol, extension)

    def _choose_subprotocol(self, request: Request, offered: List[str]) -> Optional[str]:
        """The subprotocol to accept, from the callback or the preference list."""
        if self.select_subprotocol is None:
            return handshake.select_subprotocol(offered, self.subprotocols)
        try:
            chosen = self.select_subprotocol(request, offered)
        except Exception:
            import logging

            logging.getLogger("simplews").exception("select_subprotocol failed for %s", redact_url(request.path))
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

