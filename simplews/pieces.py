"""A message sent in pieces: an iterable of str or bytes-like, cut into frames as it is consumed.

:func:`frame_payloads` turns the pieces into frame payloads of ``frame_size``
bytes (small pieces coalesced, large ones cut), asking the iterable for the
next piece only once the payloads it already gave are out: a generator is
consumed as the frames go out, and the whole message is never in memory.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Optional, Tuple

from .exceptions import LocalProtocolError, RemoteProtocolError
from .frames import decode_utf8, utf8_decoder

__all__ = ["frame_payloads", "is_piecewise"]

#: frames of a message sent in pieces when ``frame_size`` is ``None``
_DEFAULT_SIZE = 64 * 1024
_DATA = (bytes, bytearray, memoryview)


def is_piecewise(message: Any) -> bool:
    """Whether ``message`` is sent in pieces: an iterable other than str, bytes-like or a mapping."""
    if type(message) is str or type(message) is bytes or isinstance(message, (str,) + _DATA):
        return False
    if isinstance(message, dict) or hasattr(message, "keys"):
        raise TypeError("a message is str, bytes-like or an iterable of those, not a mapping (send_json() sends JSON)")
    if not hasattr(message, "__iter__"):
        raise TypeError(f"a message is str, bytes-like or an iterable of those, not {type(message).__name__}")
    return True


def _encode(piece: Any, text: Optional[bool]) -> Tuple[bool, Any]:
    """``(is_text, bytes)`` of one piece; ``TypeError`` for a piece of the other type than the first."""
    if isinstance(piece, str):
        is_text = True
        data: Any = piece.encode("utf-8")
    elif isinstance(piece, _DATA):
        is_text = False
        data = piece.cast("B") if isinstance(piece, memoryview) and piece.nbytes != len(piece) else piece
    else:
        raise TypeError(f"a piece of a message is str or bytes-like, not {type(piece).__name__}")
    if text is not None and is_text is not text:
        first, this = ("str", "bytes-like") if text else ("bytes-like", "str")
        raise TypeError(f"a message sent in pieces keeps the type of its first piece ({first}), not {this}")
    return is_text, data


def frame_payloads(
    pieces: Iterable[Any], frame_size: Optional[int], as_text: Optional[bool] = None
) -> Iterator[Tuple[bool, Any, bool]]:
    """``(is_text, payload, fin)`` for each frame of the message made of ``pieces``.

    Every payload but the last is exactly ``frame_size`` bytes; the last holds
    what is left (possibly nothing) and has ``fin``. Nothing at all for no
    pieces. The first piece fixes the type; a later one of the other type
    raises ``TypeError``. ``as_text`` overrides the type sent, as ``send(...,
    text=)`` does (bytes sent as text must be UTF-8: :class:`LocalProtocolError`).
    """
    size = frame_size or _DEFAULT_SIZE
    text: Optional[bool] = None
    buf = bytearray()
    check = utf8_decoder() if as_text else None
    for piece in pieces:
        text, data = _encode(piece, text)
        if check is not None and not text:
            _check_utf8(check, data, False)
        view = memoryview(data)
        start = 0
        if buf:
            start = min(size - len(buf), len(view))
            buf += view[:start]
            if len(buf) < size:
                continue
            yield text if as_text is None else as_text, bytes(buf), False
            buf = bytearray()
        while len(view) - start >= size:  # large pieces go out in slices, not copied into the buffer
            yield text if as_text is None else as_text, view[start : start + size], False
            start += size
        buf += view[start:]
    if text is not None:
        if check is not None and not text:
            _check_utf8(check, b"", True)
        yield text if as_text is None else as_text, bytes(buf), True


def _check_utf8(decoder: Any, data: Any, final: bool) -> None:
    """Refuse bytes sent as text that are not UTF-8 (checked piece by piece)."""
    try:
        decode_utf8(data, decoder, final)
    except RemoteProtocolError:
        raise LocalProtocolError("text=True needs valid UTF-8") from None
