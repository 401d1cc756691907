"""Broadcast: one message to many connections, without waiting on any of them.

:func:`broadcast` encodes a message once (per compression setting) and hands
it to each connection's own write path, which writes it at once when its
writer role is free, or right after the message a busy writer is sending.
Nothing waits here: what a slow peer cannot take yet stays owed and the
scheduler writes it as the peer reads. A peer that takes nothing for
``timeout`` seconds while a broadcast waits for it is closed with 1008; one
that already owes too much is skipped. So no client can hold up the others,
and the caller (a feed loop, a Redis subscriber) never blocks.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional

from .connection import Connection
from .protocol import Protocol

__all__ = ["broadcast", "DEFAULT_BROADCAST_TIMEOUT"]

#: How long a broadcast waits for a peer that takes nothing before closing it with 1008.
DEFAULT_BROADCAST_TIMEOUT = 2.0


def broadcast(
    conns: Iterable[Connection], message: Any, *, text: Optional[bool] = None, timeout: Optional[float] = DEFAULT_BROADCAST_TIMEOUT
) -> int:
    """Hand ``message`` to every connection in ``conns``; return how many took it.

    Raises ``TypeError`` (or :class:`~simplews.LocalProtocolError`) before
    anything is sent when the message cannot be sent at all.
    """
    _check(message, text)
    shared: Dict[Optional[int], List[Any]] = {}
    window = timeout if timeout is not None else 3600.0
    taken = 0
    for conn in conns:
        protocol = conn.protocol
        frames: Optional[List[Any]] = None
        if protocol.extension is None and not protocol.is_client:
            size = protocol.frame_size
            frames = shared.get(size)
            if frames is None:
                frames = shared[size] = Protocol(False, frame_size=size).send_message(message, text=text)
        if conn._offer(message, text, frames, window):
            taken += 1
    return taken


def _check(message: Any, text: Optional[bool]) -> None:
    """Refuse a message no connection could send, before anything is sent."""
    if not isinstance(message, (str, bytes, bytearray, memoryview)):
        raise TypeError(f"a message is str or bytes-like, not {type(message).__name__}")
    if text and not isinstance(message, str):
        from .exceptions import LocalProtocolError, RemoteProtocolError
        from .frames import decode_utf8

        try:
            decode_utf8(message)
        except RemoteProtocolError:
            raise LocalProtocolError("text=True needs valid UTF-8") from None
