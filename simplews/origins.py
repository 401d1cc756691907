"""The ``origins=`` policy of a server: which ``Origin`` headers may open a connection.

A browser sends the origin of the page that opens a WebSocket (RFC 6454:
``scheme://host[:port]``, no path); checking it stops other sites from using a
visitor's cookies against the server. Each entry of ``origins`` is one of:

* an exact origin, ``"https://app.example.com"``: scheme and host compare
  case-insensitively, the port exactly, with the default port of ``http``/``ws``
  (80) and ``https``/``wss`` (443) filled in, so ``https://a.com`` and
  ``https://a.com:443`` are the same origin;
* a wildcard, ``"https://*.example.com"``: ``*`` is exactly one DNS label, so
  ``https://app.example.com`` matches but neither ``https://example.com`` (the
  apex: list it too if wanted) nor ``https://a.b.example.com``; scheme and port
  match as for an exact origin, and an IP address never matches a wildcard;
* a compiled regular expression, always matched against the whole ``Origin``
  value as sent (:meth:`re.Pattern.fullmatch`: a pattern written for
  ``example\\.com`` never lets ``https://example.com.evil.net`` in);
* ``None``: requests without an ``Origin`` header are allowed. Browsers always
  send one; other clients (scripts, devices, servers) usually do not. Without
  ``None`` in the list a request without ``Origin`` is refused, as everything
  not listed is: a server that checks origins should say in its configuration
  that it also accepts non-browser clients;
* any other string without ``://``, taken literally, for example ``"null"``
  (what a browser sends from a sandboxed page or a ``file:`` URL).

An ``Origin`` value that is not a well-formed origin only ever matches a
literal entry or a regular expression. A string entry with ``://`` that is not
a bare origin (a path, a query, user info, a bad port, a ``*`` anywhere else)
is a ``ValueError``: ``"https://app.example.com/"`` would never match anything.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Iterable, List, NamedTuple, Optional, Pattern, Set, Tuple, Union

__all__ = ["OriginPolicy", "OriginSpec"]

OriginSpec = Union[str, Pattern[str], None]

_DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
_ORIGIN_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://"
    r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)"
    r"(?::(?P<port>[0-9]{1,5}))?"
)
_LABEL_RE = re.compile(r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?")


class _Origin(NamedTuple):
    """An origin, normalised: lower-case scheme and host, the port always given (or ``None``)."""

    scheme: str
    host: str
    port: Optional[int]


class OriginPolicy:
    """Decide whether an ``Origin`` header value is allowed (see the module documentation)."""

    def __init__(self, origins: Iterable[OriginSpec]) -> None:
        if isinstance(origins, (str, bytes)):
            raise TypeError("origins is a list of origins, not one string")
        self.allow_missing = False
        self._literal: Set[str] = set()
        self._exact: Set[_Origin] = set()
        self._wildcards: Set[Tuple[str, Tuple[str, ...], Optional[int]]] = set()
        self._patterns: List[Pattern[str]] = []
        for spec in origins:
            self._add(spec)

    def _add(self, spec: OriginSpec) -> None:
        if spec is None:
            self.allow_missing = True
        elif isinstance(spec, re.Pattern):
            if not isinstance(spec.pattern, str):
                raise TypeError("an origin pattern matches str, not bytes")
            self._patterns.append(spec)
        elif not isinstance(spec, str):
            raise TypeError(f"an origin is a str, a compiled pattern or None, not {spec!r}")
        elif "://" not in spec:
            self._literal.add(spec)
        else:
            wildcard = "://*." in spec
            parsed = _parse(spec.replace("://*.", "://wildcard.", 1) if wildcard else spec)
            if parsed is None or (wildcard and (_is_ip(parsed.host) or parsed.host == "wildcard.")):
                raise ValueError(f"{spec!r} is not an origin (scheme://host[:port], '*' only as the first label)")
            if wildcard:
                self._wildcards.add((parsed.scheme, tuple(parsed.host.split("."))[1:], parsed.port))
            else:
                self._exact.add(parsed)

    def allows(self, origin: Optional[str]) -> bool:
        """Whether a request whose ``Origin`` header is ``origin`` (``None``: absent) may connect."""
        if origin is None:
            return self.allow_missing
        if origin in self._literal:
            return True
        parsed = _parse(origin)
        if parsed is not None:
            if parsed in self._exact:
                return True
            labels = parsed.host.split(".")
            if len(labels) > 1 and _LABEL_RE.fullmatch(labels[0]) and not _is_ip(parsed.host):
                if (parsed.scheme, tuple(labels[1:]), parsed.port) in self._wildcards:
                    return True
        return any(pattern.fullmatch(origin) for pattern in self._patterns)


def _parse(text: str) -> Optional[_Origin]:
    """``text`` as a normalised origin, or ``None`` if it is not exactly one."""
    match = _ORIGIN_RE.fullmatch(text)
    if match is None:
        return None
    scheme = match["scheme"].lower()
    host = match["host"].lower()
    if host.startswith("["):
        try:
            host = f"[{ipaddress.IPv6Address(host[1:-1]).compressed}]"
        except ValueError:
            return None
    elif any(not label for label in host.split(".")[:-1]) or host == ".":
        return None  # empty labels; one trailing dot is a distinct, valid host
    if match["port"] is None:
        port = _DEFAULT_PORTS.get(scheme)
    else:
        port = int(match["port"])
        if port > 65535:
            return None
    return _Origin(scheme, host, port)


def _is_ip(host: str) -> bool:
    """Whether a normalised host is an IP address (a wildcard never matches one)."""
    if host.startswith("["):
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True
