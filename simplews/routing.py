"""Routing: map request paths to handlers, standard library only (rules in :class:`Router`)."""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple, TypeVar, overload
from urllib.parse import unquote_to_bytes

from .handshake import Headers, Request, Response

__all__ = ["Router"]

H = TypeVar("H")

_PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?\}")
_BAD_PERCENT_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_ABSOLUTE_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*")


class _BadPath(Exception):
    """Internal: the request path is malformed (answered 400)."""


class _Segment(NamedTuple):
    """One segment of a pattern: literal text, or a placeholder's name."""

    text: str
    kind: str  # "literal", "segment" or "path"


class _Route(NamedTuple):
    pattern: str
    segments: Tuple[_Segment, ...]
    handler: Any


class Router:
    """Dispatch connections to handlers by the request path.

    Declare routes with :meth:`route` (also a decorator), or give a mapping of
    patterns to handlers, declared in its order::

        router = simplews.Router({"/": lobby})

        @router.route("/rooms/{room}")
        def room(ws):
            ws.send(f"welcome to {ws.request.path_params['room']}")

    A handler is anything a server accepts as one: a ``handler(ws)`` function,
    a handler object or class with ``on_*`` methods, or callbacks; the router
    keeps it as given.

    A pattern is a path made of segments between ``/``. A segment is literal
    text, ``{name}`` (one whole segment, never empty) or, as the last segment
    only, ``{name:path}`` (the rest of the path: one or more non-empty
    segments, joined with ``/``). Placeholders are whole segments:
    ``/file-{id}`` is refused. A request path is matched so:

    * the query string is ignored;
    * the path is split at ``/`` first and each segment percent-decoded (UTF-8)
      after, so ``%2F`` never splits a segment: ``/a%2Fb`` is one segment
      ``a/b``. Literal segments are compared with decoded segments, so
      patterns are plain text (``/café``, not ``/caf%C3%A9``);
    * trailing slashes are exact: ``/chat`` and ``/chat/`` are two paths and a
      route matches only the one it declares. Routers made for HTTP pages often
      redirect one to the other, but a browser's WebSocket never follows a
      redirect (the handshake just fails), so a redirect would only hide a
      wrong URL; declare both if both should work;
    * the first declared route that matches wins. A route that an earlier one
      makes unreachable (the same pattern again, or ``/users/me`` after
      ``/users/{id}``) is a ``ValueError`` when declared: declare the specific
      one first.

    A path that cannot be decoded (``%`` not followed by two hex digits, bytes
    that are not UTF-8, a NUL) or that climbs (a segment, or a ``/``-separated
    part of a decoded one, that is ``.`` or ``..``) is answered 400; a path no
    route matches, 404. So ``path_params`` values never hold a NUL or a ``.``
    or ``..`` part, and a ``{name:path}`` value never starts with ``/`` nor
    has an empty segment.
    """

    def __init__(self, routes: Optional[Mapping[str, Any]] = None) -> None:
        self._routes: List[_Route] = []
        self._by_pattern: Dict[str, _Route] = {}
        for pattern, handler in (routes or {}).items():
            self.route(pattern, handler)

    @overload
    def route(self, pattern: str) -> Callable[[H], H]: ...

    @overload
    def route(self, pattern: str, handler: H) -> H: ...

    def route(self, pattern: str, handler: Any = None) -> Any:
        """Declare that paths matching ``pattern`` go to ``handler``.

        Without ``handler``, return a decorator that declares the decorated
        function or class and returns it unchanged. Raises ``ValueError`` for a
        malformed pattern, or one an earlier route already covers.
        """
        if handler is None:

            def decorator(target: Any) -> Any:
                self.route(pattern, target)
                return target

            return decorator
        segments = _compile(pattern)
        for earlier in self._routes:
            if _covers(earlier.segments, segments):
                raise ValueError(f"route {pattern!r} is unreachable: {earlier.pattern!r}, declared before, matches every path it does")
        route = _Route(pattern, segments, handler)
        self._routes.append(route)
        self._by_pattern[pattern] = route
        return handler

    @property
    def patterns(self) -> List[str]:
        """The declared patterns, in the order they are tried."""
        return [route.pattern for route in self._routes]

    def process_request(self, request: Request) -> Optional[Response]:
        """A ``process_request`` hook: answer 400 or 404, or note the route and go on.

        On a match, sets ``request.route`` and ``request.path_params`` and
        returns ``None``; never raises for a bad path.
        """
        try:
            found = self._match(request.path)
        except _BadPath as exc:
            return _plain(400, f"bad request path: {exc}")
        if found is None:
            return _plain(404, "not found")
        route, params = found
        request.route = route.pattern
        request.path_params = params
        return None

    def handler_for(self, request: Request) -> Any:
        """The handler declared for ``request``'s route, as it was given.

        Uses ``request.route`` when :meth:`process_request` has set it, else
        matches the path now (and sets ``route`` and ``path_params``). Raises
        ``LookupError`` if no route matches: a server calls
        :meth:`process_request` first, which answers those requests itself.
        """
        route = self._by_pattern.get(request.route) if request.route is not None else None
        if route is not None:
            return route.handler
        if self.process_request(request) is not None:
            raise LookupError(f"no route for {request.path_only!r}")
        return self._by_pattern[request.route].handler  # type: ignore[index]  # set by process_request

    def _match(self, target: str) -> Optional[Tuple[_Route, Dict[str, str]]]:
        """The first route matching ``target`` and its parameters; raises :class:`_BadPath`."""
        parts = _decoded_segments(target)
        for route in self._routes:
            params = _match_segments(route.segments, parts)
            if params is not None:
                return route, params
        return None


def _plain(status: int, text: str) -> Response:
    """A short text/plain answer."""
    return Response(status, Headers([("Content-Type", "text/plain; charset=utf-8")]), f"{text}\n".encode())


# --- patterns ----------------------------------------------------------------------------


def _compile(pattern: str) -> Tuple[_Segment, ...]:
    """The segments of ``pattern``; ``ValueError`` if it is malformed."""
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise ValueError(f"a route pattern is a path starting with '/', not {pattern!r}")
    if "?" in pattern or "#" in pattern:
        raise ValueError(f"route pattern {pattern!r}: query strings are not matched; leave them out")
    segments: List[_Segment] = []
    names = set()
    raw = pattern[1:].split("/")
    for index, text in enumerate(raw):
        placeholder = _PLACEHOLDER_RE.fullmatch(text)
        if placeholder is None:
            if "{" in text or "}" in text:
                raise ValueError(f"route pattern {pattern!r}: a placeholder must be a whole segment, like /{{name}}/")
            if text in (".", ".."):
                raise ValueError(f"route pattern {pattern!r}: '.' and '..' segments never match")
            segments.append(_Segment(text, "literal"))
            continue
        name, converter = placeholder.groups()
        if converter not in (None, "path"):
            raise ValueError(f"route pattern {pattern!r}: unknown converter {converter!r} (only {{name:path}})")
        if converter == "path" and index != len(raw) - 1:
            raise ValueError(f"route pattern {pattern!r}: {{{name}:path}} must be the last segment")
        if name in names:
            raise ValueError(f"route pattern {pattern!r}: parameter {name!r} appears twice")
        names.add(name)
        segments.append(_Segment(name, converter or "segment"))
    return tuple(segments)


def _covers(first: Sequence[_Segment], second: Sequence[_Segment]) -> bool:
    """Whether every path ``second`` matches is matched by ``first`` too."""
    for index, seg in enumerate(first):
        if seg.kind == "path":
            # ``{name:path}`` takes one or more non-empty segments: ``second`` must never leave an empty one
            return len(second) > index and all(other.kind != "literal" or other.text for other in second[index:])
        if index >= len(second):
            return False
        other = second[index]
        if other.kind == "path":
            return False  # ``second`` matches longer paths than ``first`` does
        if seg.kind == "literal" and (other.kind != "literal" or other.text != seg.text):
            return False
        if seg.kind == "segment" and other.kind == "literal" and other.text == "":
            return False  # ``{name}`` never matches an empty segment
    return len(first) == len(second)


# --- request paths -----------------------------------------------------------------------


def _decoded_segments(target: str) -> List[str]:
    """The percent-decoded segments of a request target's path; raises :class:`_BadPath`."""
    path = target.split("?", 1)[0].split("#", 1)[0]
    if not path.startswith("/"):
        absolute = _ABSOLUTE_RE.match(path)  # absolute-form: GET ws://host/path HTTP/1.1
        if absolute is None:
            raise _BadPath("the path does not start with '/'")
        path = path[absolute.end() :] or "/"
        if not path.startswith("/"):
            raise _BadPath("the path does not start with '/'")
    if _BAD_PERCENT_RE.search(path):
        raise _BadPath("'%' not followed by two hex digits")
    segments = []
    for raw in path[1:].split("/"):
        try:
            text = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _BadPath("percent-encoded bytes are not UTF-8") from None
        if "\x00" in text:
            raise _BadPath("NUL in the path")
        if any(part in (".", "..") for part in text.split("/")):
            raise _BadPath("'.' or '..' in the path")
        segments.append(text)
    return segments


def _match_segments(pattern: Sequence[_Segment], parts: Sequence[str]) -> Optional[Dict[str, str]]:
    """The parameters if the decoded ``parts`` match ``pattern``, else ``None``."""
    params: Dict[str, str] = {}
    for index, seg in enumerate(pattern):
        if seg.kind == "path":
            rest = parts[index:]
            if not rest or "" in rest:
                return None
            params[seg.text] = "/".join(rest)
            return params
        if index >= len(parts):
            return None
        part = parts[index]
        if seg.kind == "literal":
            if part != seg.text:
                return None
        elif not part:
            return None
        else:
            params[seg.text] = part
    return params if len(parts) == len(pattern) else None

