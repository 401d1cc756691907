"""Callbacks for one connection, in any of the three styles, on one code path.

A server or :class:`~simplews.Client` accepts:

* callbacks: ``on_open(ws)``, ``on_message(ws, message)``,
  ``on_close(ws, code, reason)``, ``on_error(ws, exc)``, and the optional
  ``on_ping(ws, payload)``, ``on_pong(ws, payload)`` and
  ``on_fragment(ws, data, fin)``;
* a handler object with any of those methods (a class is instantiated once per
  connection, so it may keep per-connection state);
* a ``handler(ws)`` function that loops over ``ws`` itself.

Every style becomes a :class:`Handler` and runs through :func:`run_connection`
on the connection's own thread. ``on_ping`` and ``on_pong`` run there too, in
order with the messages around them (never on the keepalive scheduler's
thread, so a slow hook stalls no other connection); the automatic pong has
already gone out (unless ``auto_pong=False``). ``on_fragment`` replaces
``on_message`` for applications that receive messages too large to hold: it
gets every message in pieces as they arrive (``fin`` on the last), with no
size limit, because its pieces are never gathered (``max_message_size`` still
bounds ``on_message`` and ``recv()``).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional, Union

from .connection import Connection
from .exceptions import ConnectionClosed
from .protocol import Ping, Pong
from .streaming import fragments

__all__ = ["Handler", "resolve_handler", "run_connection", "preparer"]


OnOpen = Callable[[Connection], Any]
OnMessage = Callable[[Connection, Any], Any]
OnClose = Callable[[Connection, int, str], Any]
OnError = Callable[[Optional[Connection], BaseException], Any]  # a Client passes None when connecting failed
OnControl = Callable[[Connection, bytes], Any]
OnFragment = Callable[[Connection, Union[str, bytes], bool], Any]

_CALLBACKS = ("on_open", "on_message", "on_close", "on_error", "on_ping", "on_pong", "on_fragment")


@dataclasses.dataclass
class Handler:
    """The callbacks of one connection."""

    on_open: Optional[OnOpen] = None
    on_message: Optional[OnMessage] = None
    on_close: Optional[OnClose] = None
    on_error: Optional[OnError] = None
    on_ping: Optional[OnControl] = None
    on_pong: Optional[OnControl] = None
    on_fragment: Optional[OnFragment] = None
    #: a ``handler(ws)`` function that runs the whole connection itself
    func: Optional[OnOpen] = None


def resolve_handler(
    handler: Any = None,
    *,
    on_open: Optional[OnOpen] = None,
    on_message: Optional[OnMessage] = None,
    on_close: Optional[OnClose] = None,
    on_error: Optional[OnError] = None,
    on_ping: Optional[OnControl] = None,
    on_pong: Optional[OnControl] = None,
    on_fragment: Optional[OnFragment] = None,
) -> Callable[[], Handler]:
    """Turn any accepted handler style into a factory of per-connection :class:`Handler`."""
    explicit = Handler(on_open, on_message, on_close, on_error, on_ping, on_pong, on_fragment)
    if handler is None:
        return lambda: explicit
    if inspect.isclass(handler):
        cls = handler
        return lambda: _merge(_from_object(cls()), explicit)
    if any(callable(getattr(handler, name, None)) for name in _CALLBACKS):
        from_obj = _merge(_from_object(handler), explicit)
        return lambda: from_obj
    if callable(handler):
        if on_message is not None or on_fragment is not None:
            raise TypeError("give either a handler(ws) function or on_message / on_fragment, not both")
        merged = dataclasses.replace(explicit, func=handler)
        return lambda: merged
    raise TypeError(f"handler must be a function, a class or an object with on_* methods, not {handler!r}")


def preparer(
    handler: Any, on_ping: Optional[OnControl], on_pong: Optional[OnControl], on_fragment: Optional[OnFragment]
) -> Callable[[Connection], None]:
    """What a connection for these handlers needs before its first byte is read: hooks queued, messages streamed."""
    control = on_ping is not None or on_pong is not None or any(callable(getattr(handler, n, None)) for n in ("on_ping", "on_pong"))
    streamed = on_fragment is not None or callable(getattr(handler, "on_fragment", None))

    def prepare(ws: Connection) -> None:
        ws._reader.hooks = control
        if streamed:
            ws._reader.stream_every()

    return prepare


def _from_object(obj: Any) -> Handler:
    """The on_* methods of a handler object."""
    return Handler(*(getattr(obj, name, None) for name in _CALLBACKS))


def _merge(primary: Handler, fallback: Handler) -> Handler:
    """Callbacks of ``primary``, completed by those of ``fallback``."""
    return Handler(*(getattr(primary, n) or getattr(fallback, n) for n in _CALLBACKS))


def _report(handler: Handler, ws: Connection, exc: BaseException) -> None:
    """Hand a callback's exception to ``on_error``, or log it."""
    if handler.on_error is not None:
        try:
            handler.on_error(ws, exc)
            return
        except Exception:
            ws.logger.exception("%r: on_error raised", ws)
            return
    if isinstance(exc, ConnectionClosed):
        # e.g. an echo to a client that has just left: routine, not an application error
        ws.logger.debug("%r: callback sent on a closed connection: %s", ws, exc)
        return
    ws.logger.error("%r: callback raised", ws, exc_info=(type(exc), exc, exc.__traceback__))


def _hook(handler: Handler, ws: Connection) -> Callable[[Union[Ping, Pong]], None]:
    """The connection's ping/pong hook: calls ``on_ping`` / ``on_pong``, reporting what they raise."""

    def hook(event: Union[Ping, Pong]) -> None:
        callback = handler.on_ping if type(event) is Ping else handler.on_pong
        if callback is not None:
            try:
                callback(ws, event.data)
            except Exception as exc:
                _report(handler, ws, exc)

    return hook


def _message_loop(ws: Connection, handler: Handler) -> None:
    """Call ``on_message`` for each message, or ``on_fragment`` for each piece, until the connection ends."""
    on_message, on_fragment = handler.on_message, handler.on_fragment
    if on_fragment is None:
        for message in ws:
            if on_message is not None:
                try:
                    on_message(ws, message)
                except Exception as exc:
                    _report(handler, ws, exc)
        return
    while True:
        for piece in fragments(ws._reader, None, None, every=True):
            try:
                on_fragment(ws, piece.data, piece.fin)
            except Exception as exc:
                _report(handler, ws, exc)


def run_connection(ws: Connection, handler: Handler) -> None:
    """Run ``handler`` for ``ws`` on this thread until the connection ends.

    ``on_open`` runs first; then either ``handler(ws)`` or the message loop that
    calls ``on_message`` for each message (an exception in ``on_message`` is
    reported and the loop goes on). When ``handler(ws)`` raises, the connection
    closes with 1011. ``on_close`` runs exactly once, whatever ended it.
    """
    if handler.on_ping is not None or handler.on_pong is not None:
        ws._control_hook = _hook(handler, ws)
        ws._reader.hooks = True
    try:
        if handler.on_open is not None:
            try:
                handler.on_open(ws)
            except Exception as exc:
                _report(handler, ws, exc)
        if handler.func is not None:
            try:
                handler.func(ws)
            except ConnectionClosed:
                pass
            except Exception as exc:
                _report(handler, ws, exc)
                ws.close(1011, "internal error")
        else:
            try:
                _message_loop(ws, handler)
            except ConnectionClosed:
                pass
    finally:
        try:
            ws.close()
        except Exception as exc:  # pragma: no cover - close() is not expected to raise
            ws.logger.debug("%r: close failed: %s", ws, exc)
        if handler.on_close is not None:
            try:
                handler.on_close(ws, ws.close_code or 1006, ws.close_reason or "")
            except Exception as exc:
                _report(handler, ws, exc)
