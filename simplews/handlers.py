"""Callbacks for one connection, in any of the three styles, on one code path.

A server or :class:`~simplews.Client` accepts:

* callbacks: ``on_open(ws)``, ``on_message(ws, message)``,
  ``on_close(ws, code, reason)``, ``on_error(ws, exc)``;
* a handler object with any of those methods (a class is instantiated once per
  connection, so it may keep per-connection state);
* a ``handler(ws)`` function that loops over ``ws`` itself.

Every style becomes a :class:`Handler` and runs through :func:`run_connection`
on the connection's own thread.
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional

from .connection import Connection
from .exceptions import ConnectionClosed

__all__ = ["Handler", "resolve_handler", "run_connection"]


OnOpen = Callable[[Connection], Any]
OnMessage = Callable[[Connection, Any], Any]
OnClose = Callable[[Connection, int, str], Any]
OnError = Callable[[Optional[Connection], BaseException], Any]  # a Client passes None when connecting failed

_CALLBACKS = ("on_open", "on_message", "on_close", "on_error")


@dataclasses.dataclass
class Handler:
    """The callbacks of one connection."""

    on_open: Optional[OnOpen] = None
    on_message: Optional[OnMessage] = None
    on_close: Optional[OnClose] = None
    on_error: Optional[OnError] = None
    #: a ``handler(ws)`` function that runs the whole connection itself
    func: Optional[OnOpen] = None


def resolve_handler(
    handler: Any = None,
    *,
    on_open: Optional[OnOpen] = None,
    on_message: Optional[OnMessage] = None,
    on_close: Optional[OnClose] = None,
    on_error: Optional[OnError] = None,
) -> Callable[[], Handler]:
    """Turn any accepted handler style into a factory of per-connection :class:`Handler`."""
    explicit = Handler(on_open, on_message, on_close, on_error)
    if handler is None:
        return lambda: explicit
    if inspect.isclass(handler):
        cls = handler
        return lambda: _merge(_from_object(cls()), explicit)
    if any(callable(getattr(handler, name, None)) for name in _CALLBACKS):
        from_obj = _merge(_from_object(handler), explicit)
        return lambda: from_obj
    if callable(handler):
        if on_message is not None:
            raise TypeError("give either a handler(ws) function or on_message, not both")
        merged = dataclasses.replace(explicit, func=handler)
        return lambda: merged
    raise TypeError(f"handler must be a function, a class or an object with on_* methods, not {handler!r}")


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


def run_connection(ws: Connection, handler: Handler) -> None:
    """Run ``handler`` for ``ws`` on this thread until the connection ends.

    ``on_open`` runs first; then either ``handler(ws)`` or the message loop that
    calls ``on_message`` for each message (an exception in ``on_message`` is
    reported and the loop goes on). When ``handler(ws)`` raises, the connection
    closes with 1011. ``on_close`` runs exactly once, whatever ended it.
    """
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
            on_message = handler.on_message
            try:
                for message in ws:
                    if on_message is not None:
                        try:
                            on_message(ws, message)
                        except Exception as exc:
                            _report(handler, ws, exc)
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
