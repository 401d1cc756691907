"""RFC 6455 section 4: the HTTP/1.1 upgrade, built and checked without sockets."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

from .exceptions import InvalidHandshake, InvalidHeader, InvalidStatus, LocalProtocolError, NegotiationError

__all__ = [
    "Headers",
    "Request",
    "Response",
    "HeaderLike",
    "generate_key",
    "accept_key",
    "find_head_end",
    "build_request",
    "parse_request",
    "check_request",
    "build_response",
    "parse_response",
    "check_response",
    "parse_token_list",
]

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFAULT_MAX_HEADER_SIZE = 16 * 1024
MAX_HEADERS = 128

_TOKEN_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_STR_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_BAD_VALUE_RE = re.compile(r"[\r\n\x00]")

#: headers whose values never appear in a repr (and so in logs or tracebacks)
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})

_USERINFO_RE = re.compile(r"(?<=//)[^/?#\s]*@")
_QUERY_RE = re.compile(r"\?([^#\s]*)")
_FRAGMENT_RE = re.compile(r"#\S+")

#: request headers the handshake owns: a user value would break or duplicate them
_MANAGED_REQUEST_HEADERS = frozenset(
    {"upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions"}
)

HTTP_REASONS: Dict[int, str] = {
    101: "Switching Protocols",
    200: "OK",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    303: "See Other",
    307: "Temporary Redirect",
    308: "Permanent Redirect",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def redact_url(text: str) -> str:
    """How a URL, request target or request line is shown in logs and errors.

    Any of these may carry a credential (``?token=`` is how browsers authenticate
    a WebSocket), so ``user:password@`` becomes ``***@``, every query value and a
    fragment ``***``. Parameter names stay: they help debugging (was a token
    sent?) and are not secret; a parameter without ``=`` is masked whole.
    """
    text = _USERINFO_RE.sub("***@", text)
    text = _QUERY_RE.sub(lambda m: "?" + "&".join(map(_redact_parameter, m.group(1).split("&"))), text)
    return _FRAGMENT_RE.sub("#***", text)


def _redact_parameter(parameter: str) -> str:
    name, equals, value = parameter.partition("=")
    if not equals:
        return "***" if parameter else ""
    return f"{name}=***" if value else f"{name}="


class Headers:
    """Case-insensitive HTTP headers that keep order and repeated names."""

    __slots__ = ("_items",)

    def __init__(self, items: Optional[HeaderLike] = None) -> None:
        self._items: List[Tuple[str, str]] = []
        if items is not None:
            pairs = items.items() if isinstance(items, (Mapping, Headers)) else items
            for name, value in pairs:
                self.add(name, value)

    def add(self, name: str, value: str) -> None:
        """Append a header, refusing names and values that would inject lines."""
        if not _STR_TOKEN_RE.match(name):
            raise LocalProtocolError(f"invalid header name {name!r}")
        value = str(value)
        if _BAD_VALUE_RE.search(value):
            raise LocalProtocolError(f"header {name} contains CR, LF or NUL")
        self._items.append((name, value))

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``name``, or ``default``."""
        lname = name.lower()
        for key, value in self._items:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> List[str]:
        """Every value of ``name``, in order."""
        lname = name.lower()
        return [value for key, value in self._items if key.lower() == lname]

    def items(self) -> List[Tuple[str, str]]:
        """All ``(name, value)`` pairs in order."""
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(key for key, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Headers) and other._items == self._items

    def __repr__(self) -> str:
        shown = [(k, _shown_value(k, v)) for k, v in self._items]
        return f"Headers({shown!r})"

    def serialize(self) -> str:
        """The header lines, each ending in CRLF."""
        return "".join(f"{name}: {value}\r\n" for name, value in self._items)


HeaderLike = Union[Headers, Mapping[str, str], Iterable[Tuple[str, str]]]


def _shown_value(name: str, value: str) -> str:
    """A header value as a repr shows it: credentials hidden, a redirect target redacted."""
    lname = name.lower()
    if lname in _SECRET_HEADERS:
        return "***"
    return redact_url(value) if lname == "location" else value


@dataclasses.dataclass
class Request:
    """An HTTP request: the opening handshake as the server sees it.

    ``remote_address`` is the client's address: the socket's peer, or behind a
    trusted proxy (``proxy_protocol``, ``trusted_proxies``) the address the proxy
    gives; ``peer_address`` is always the socket's peer (``None`` for a Unix
    socket). Request hooks fill in the last three fields: a
    :class:`~simplews.Router` sets ``path_params`` (the percent-decoded
    ``{name}`` parts of the path) and ``route`` (the pattern that matched);
    :func:`~simplews.basic_auth` sets ``username`` once the credentials are checked.
    """

    path: str
    headers: Headers
    method: str = "GET"
    remote_address: Optional[Tuple[str, int]] = None
    subprotocol: Optional[str] = None
    peer_address: Optional[Tuple[str, int]] = None
    path_params: Dict[str, str] = dataclasses.field(default_factory=dict)
    route: Optional[str] = None
    username: Optional[str] = None

    @property
    def query(self) -> Dict[str, List[str]]:
        """Query string parameters, each with every value given."""
        return parse_qs(urlsplit(self.path).query, keep_blank_values=True)

    @property
    def path_only(self) -> str:
        """The path without the query string."""
        return urlsplit(self.path).path

    def __repr__(self) -> str:
        # the path as logs show it (query values masked); ``path`` itself stays the real one
        return (
            f"Request(path={redact_url(self.path)!r}, headers={self.headers!r}, method={self.method!r}, "
            f"remote_address={self.remote_address!r}, subprotocol={self.subprotocol!r}, "
            f"peer_address={self.peer_address!r}, path_params={self.path_params!r}, route={self.route!r}, username={self.username!r})"
        )


@dataclasses.dataclass
class Response:
    """An HTTP response: the handshake answer, or a plain HTTP reply."""

    status: int
    headers: Headers = dataclasses.field(default_factory=Headers)
    body: bytes = b""
    reason: str = ""


# --- keys --------------------------------------------------------------------------------


def generate_key() -> str:
    """A fresh random Sec-WebSocket-Key (16 bytes from :func:`os.urandom`, base64)."""
    # os.urandom is what secrets.token_bytes calls; importing secrets costs ~1 ms
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_key(key: str) -> str:
    """The Sec-WebSocket-Accept value for ``key`` (RFC 6455 section 4.2.2)."""
    try:  # the interpreter's own SHA-1: loading hashlib (all of OpenSSL's hashes) costs 2 ms
        from _sha1 import sha1  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from hashlib import sha1

    digest = sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


# --- parsing helpers --------------------------------------------------------------------


def find_head_end(buf: Union[bytes, bytearray], max_size: Optional[int] = DEFAULT_MAX_HEADER_SIZE) -> int:
    """Index just past the blank line ending the HTTP head, or -1 if not there yet.

    Raises :class:`InvalidHandshake` (431) once ``buf`` holds more than
    ``max_size`` bytes without a complete head.
    """
    end = buf.find(b"\r\n\r\n")
    if end >= 0:
        end += 4
        if max_size is not None and end > max_size:
            raise InvalidHandshake("request headers too large", status=431)
        return end
    if max_size is not None and len(buf) > max_size:
        raise InvalidHandshake("request headers too large", status=431)
    return -1


def _parse_header_lines(lines: Sequence[bytes]) -> Headers:
    """Parse ``name: value`` lines into :class:`Headers` (no obsolete line folding)."""
    if len(lines) > MAX_HEADERS:
        raise InvalidHandshake("too many headers", status=431)
    headers = Headers()
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:  # not quoted: without a colon, any of it may be a credential
            raise InvalidHeader(f"malformed header line {len(headers) + 1} (no colon)")
        if not _TOKEN_RE.match(name):
            raise InvalidHeader(f"malformed header name {name[:64]!r}")
        try:
            text = value.strip(b" \t").decode("latin-1")
        except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes anything
            raise InvalidHeader("undecodable header") from None
        if "\x00" in text or "\r" in text or "\n" in text:
            raise InvalidHeader(f"header {name!r} contains a control character")
        headers._items.append((name.decode("ascii"), text))
    return headers


def _split_head(head: bytes) -> Tuple[bytes, List[bytes]]:
    """Split an HTTP head into its start line and header lines."""
    if not head.endswith(b"\r\n\r\n"):
        raise InvalidHandshake("incomplete HTTP head")
    lines = head[:-4].split(b"\r\n")
    return lines[0], lines[1:]


def parse_token_list(values: Iterable[str]) -> List[str]:
    """Parse comma-separated token lists from several header values (RFC 7230 ``#token``)."""
    tokens: List[str] = []
    for value in values:
        for item in value.split(","):
            item = item.strip(" \t")
            if item:
                tokens.append(item)
    return tokens


def _has_token(headers: Headers, name: str, token: str) -> bool:
    """Whether ``token`` is in the comma list of ``name`` (case-insensitive)."""
    token = token.lower()
    return any(t.lower() == token for t in parse_token_list(headers.get_all(name)))


# --- client side ---------------------------------------------------------------------------


def build_request(
    host: str,
    path: str,
    key: str,
    *,
    subprotocols: Optional[Sequence[str]] = None,
    extensions: Optional[str] = None,
    origin: Optional[str] = None,
    user_agent: Optional[str] = None,
    extra_headers: Optional[HeaderLike] = None,
) -> bytes:
    """Build the client's opening handshake request."""
    if _BAD_VALUE_RE.search(path) or " " in path:
        raise LocalProtocolError("request path contains whitespace or control characters")
    extra = Headers(extra_headers) if extra_headers is not None else Headers()
    for name in extra:
        if name.lower() in _MANAGED_REQUEST_HEADERS:
            raise LocalProtocolError(f"header {name} is set by the handshake itself; use the matching option")
    override = extra.get("Host")
    headers = Headers()
    headers.add("Host", host if override is None else override)
    headers.add("Upgrade", "websocket")
    headers.add("Connection", "Upgrade")
    headers.add("Sec-WebSocket-Key", key)
    headers.add("Sec-WebSocket-Version", "13")
    if subprotocols:
        for proto in subprotocols:
            if not _STR_TOKEN_RE.match(proto):
                raise LocalProtocolError(f"invalid subprotocol {proto!r}")
        headers.add("Sec-WebSocket-Protocol", ", ".join(subprotocols))
    if extensions:
        headers.add("Sec-WebSocket-Extensions", extensions)
    if origin is not None:
        headers.add("Origin", origin)
    if user_agent:
        headers.add("User-Agent", user_agent)
    for name, value in extra.items():
        if name.lower() != "host":
            headers.add(name, value)
    return f"GET {path} HTTP/1.1\r\n{headers.serialize()}\r\n".encode("latin-1")


def parse_response(head: bytes) -> Response:
    """Parse an HTTP response head (status line and headers, body not included)."""
    start, lines = _split_head(head)
    parts = start.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise InvalidHandshake(f"malformed status line {start[:64]!r}")
    try:
        status = int(parts[1])
    except ValueError:
        raise InvalidHandshake(f"malformed status line {start[:64]!r}") from None
    if not 100 <= status <= 999:
        raise InvalidHandshake(f"malformed status code {status}")
    reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
    return Response(status, _parse_header_lines(lines), b"", reason)


def check_response(
    response: Response,
    key: str,
    *,
    subprotocols: Optional[Sequence[str]] = None,
) -> Optional[str]:
    """Validate the server's handshake response; return the chosen subprotocol.

    Extension headers are checked by the caller, which knows what it offered.
    """
    if response.status != 101:
        raise InvalidStatus(f"server rejected WebSocket connection: HTTP {response.status}", response)
    headers = response.headers
    if not _has_token(headers, "Upgrade", "websocket"):
        raise InvalidHeader("missing or invalid Upgrade header in response")
    if not _has_token(headers, "Connection", "upgrade"):
        raise InvalidHeader("missing or invalid Connection header in response")
    accepts = headers.get_all("Sec-WebSocket-Accept")
    if len(accepts) != 1 or accepts[0] != accept_key(key):
        raise InvalidHeader("wrong Sec-WebSocket-Accept in response")
    chosen = parse_token_list(headers.get_all("Sec-WebSocket-Protocol"))
    if not chosen:
        return None
    if len(chosen) > 1:
        raise NegotiationError("server chose more than one subprotocol")
    if not subprotocols or chosen[0] not in subprotocols:
        raise NegotiationError(f"server chose subprotocol {chosen[0]!r} that was not offered")
    return chosen[0]


# --- server side ---------------------------------------------------------------------------


def parse_request(head: bytes) -> Request:
    """Parse an HTTP request head; raise :class:`InvalidHandshake` (400) if malformed."""
    start, lines = _split_head(head)
    parts = start.split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        raise InvalidHandshake(f"malformed request line {redact_url(start[:64].decode('latin-1'))!r}")
    method, target, version = parts
    if version != b"HTTP/1.1":
        raise InvalidHandshake(f"unsupported HTTP version {version[:16]!r}", status=505 if version.startswith(b"HTTP/2") else 400)
    if not _TOKEN_RE.match(method):
        raise InvalidHandshake("malformed method")
    try:
        path = target.decode("ascii")
    except UnicodeDecodeError:
        raise InvalidHandshake("non-ASCII request target") from None
    return Request(path, _parse_header_lines(lines), method.decode("ascii"))


def check_request(request: Request) -> str:
    """Validate a client's upgrade request (RFC 6455 section 4.2.1); return its key.

    Raises :class:`InvalidHandshake` whose ``status`` is the HTTP answer:
    405 for a non-GET, 426 for a missing upgrade or a version other than 13,
    400 for anything else.
    """
    headers = request.headers
    if request.method != "GET":
        raise InvalidHandshake(f"method {request.method} not allowed", status=405)
    if not _has_token(headers, "Upgrade", "websocket"):
        if "Upgrade" not in headers and "Sec-WebSocket-Key" not in headers:
            raise InvalidHandshake("this is a WebSocket endpoint; plain HTTP requests need an Upgrade", status=426)
        raise InvalidHeader("missing or invalid Upgrade header")
    if not _has_token(headers, "Connection", "upgrade"):
        raise InvalidHeader("missing or invalid Connection header")
    if len(headers.get_all("Host")) != 1:
        raise InvalidHeader("missing or repeated Host header")
    versions = headers.get_all("Sec-WebSocket-Version")
    if versions != ["13"]:
        raise InvalidHandshake("unsupported Sec-WebSocket-Version, only 13", status=426)
    keys = headers.get_all("Sec-WebSocket-Key")
    if len(keys) != 1:
        raise InvalidHeader("missing or repeated Sec-WebSocket-Key")
    key = keys[0]
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16:
        raise InvalidHeader("Sec-WebSocket-Key is not 16 bytes in base64")
    return key


def select_subprotocol(offered: Sequence[str], supported: Sequence[str]) -> Optional[str]:
    """The first of the server's ``supported`` subprotocols that the client offered."""
    for proto in supported:
        if proto in offered:
            return proto
    return None


def build_response(
    status: int,
    headers: Optional[HeaderLike] = None,
    body: bytes = b"",
) -> bytes:
    """Build an HTTP response head (plus body for non-101 answers)."""
    reason = HTTP_REASONS.get(status, "Unknown")
    hdrs = Headers(headers)
    if status != 101:
        if "Content-Length" not in hdrs:
            hdrs.add("Content-Length", str(len(body)))
        if "Connection" not in hdrs:
            hdrs.add("Connection", "close")
    return f"HTTP/1.1 {status} {reason}\r\n{hdrs.serialize()}\r\n".encode("latin-1") + (body if status != 101 else b"")


#: the headers of a 101 that the handshake owns: a response hook may not change them
ACCEPT_HEADERS = ("Upgrade", "Connection", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions")


def accept_response(
    key: str,
    *,
    subprotocol: Optional[str] = None,
    extensions: Optional[str] = None,
    extra_headers: Optional[HeaderLike] = None,
) -> Response:
    """The server's 101 Switching Protocols response."""
    headers = Headers()
    headers.add("Upgrade", "websocket")
    headers.add("Connection", "Upgrade")
    headers.add("Sec-WebSocket-Accept", accept_key(key))
    if subprotocol:
        headers.add("Sec-WebSocket-Protocol", subprotocol)
    if extensions:
        headers.add("Sec-WebSocket-Extensions", extensions)
    if extra_headers is not None:
        for name, value in Headers(extra_headers).items():
            headers.add(name, value)
    return Response(101, headers)


def build_accept(key: str, **kwargs: Any) -> bytes:
    """:func:`accept_response` as bytes (the same keywords)."""
    return serialize_response(accept_response(key, **kwargs))


def serialize_response(response: Response) -> bytes:
    """A :class:`Response` as bytes to send (the body only when the status is not 101)."""
    return build_response(response.status, response.headers, response.body)


def reject_response(exc: InvalidHandshake) -> Response:
    """The HTTP error response explaining a failed handshake to the client."""
    headers = Headers([("Content-Type", "text/plain; charset=utf-8")])
    if exc.status == 426:
        headers.add("Upgrade", "websocket")
        headers.add("Sec-WebSocket-Version", "13")
    elif exc.status == 405:
        headers.add("Allow", "GET")  # RFC 9110 15.5.6: a 405 names the allowed methods
    return Response(exc.status, headers, f"{exc}\n".encode("utf-8", "replace"))


def build_reject(exc: InvalidHandshake) -> bytes:
    """:func:`reject_response` as bytes."""
    return serialize_response(reject_response(exc))
