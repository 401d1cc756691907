"""RFC 6455 section 5: frame layout, opcodes, close codes and masking.

Nothing here keeps state beyond one frame and nothing touches a socket.
"""

from __future__ import annotations

import codecs
import dataclasses
import enum
import os
import struct
from typing import Any, Callable, List, Optional, Tuple, Union

from .exceptions import LocalProtocolError, RemoteProtocolError

__all__ = [
    "Opcode",
    "CloseCode",
    "Frame",
    "apply_mask",
    "encode_header",
    "encode_frame",
    "parse_header",
    "parse_frame",
    "encode_close",
    "parse_close",
    "is_valid_close_code",
    "decode_utf8",
    "utf8_decoder",
]

Buffer = Union[bytes, bytearray, memoryview]


class Opcode(enum.IntEnum):
    """Frame opcodes (RFC 6455 section 5.2)."""

    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


DATA_OPCODES = frozenset({0x0, 0x1, 0x2})
CONTROL_OPCODES = frozenset({0x8, 0x9, 0xA})
KNOWN_OPCODES = DATA_OPCODES | CONTROL_OPCODES


class CloseCode(enum.IntEnum):
    """Close status codes (RFC 6455 section 7.4.1 and the IANA registry)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015


# Codes that may appear in a close frame on the wire (1005, 1006, 1015 may not).
_WIRE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})


def is_valid_close_code(code: int) -> bool:
    """Whether ``code`` may be sent in a close frame (RFC 6455 section 7.4)."""
    return code in _WIRE_CODES or 3000 <= code <= 4999


@dataclasses.dataclass(frozen=True)
class Frame:
    """One WebSocket frame, payload already unmasked."""

    opcode: int
    payload: bytes
    fin: bool = True
    rsv1: bool = False
    rsv2: bool = False
    rsv3: bool = False


# --- masking -------------------------------------------------------------------------

# XOR of every byte value with each key byte: masking becomes four C-speed
# bytearray.translate() calls over the strided slices of the payload.  Built on
# first use (it would cost milliseconds of import time).
_XOR_TABLES: List[bytes] = []
_SMALL = 64


def _xor_tables() -> List[bytes]:
    """The 256 translate tables ``bytes(b ^ k for b in range(256))``, built once."""
    if not _XOR_TABLES:
        identity = int.from_bytes(bytes(range(256)), "big")
        ones = int.from_bytes(b"\x01" * 256, "big")
        _XOR_TABLES[:] = [(identity ^ (ones * k)).to_bytes(256, "big") for k in range(256)]
    return _XOR_TABLES


def _mask_int(data: Buffer, key: bytes) -> bytes:
    """Mask a short payload with one big-integer XOR."""
    n = len(data)
    k = int.from_bytes((key * ((n >> 2) + 1))[:n], "big")
    return (int.from_bytes(data, "big") ^ k).to_bytes(n, "big")


def _mask_translate(data: Buffer, key: bytes) -> bytes:
    """Mask a payload with four strided translate() passes over one bytearray copy."""
    # bytearray.translate() is a plain table loop (bytes.translate() also tracks
    # whether anything changed), so working on bytearray slices is the fast way
    out = bytearray(data)
    tables = _XOR_TABLES or _xor_tables()
    out[0::4] = out[0::4].translate(tables[key[0]])
    out[1::4] = out[1::4].translate(tables[key[1]])
    out[2::4] = out[2::4].translate(tables[key[2]])
    out[3::4] = out[3::4].translate(tables[key[3]])
    return bytes(out)


def _py_apply_mask(data: Buffer, key: bytes) -> bytes:
    """XOR ``data`` with the 4-byte masking ``key`` (masking and unmasking are the same)."""
    if len(key) != 4:
        raise ValueError("masking key must be 4 bytes")
    if len(data) <= _SMALL:
        if not data:
            return b""
        return _mask_int(data, key)
    return _mask_translate(data, key)


def _load_speedups() -> Optional[Callable[[Buffer, bytes], bytes]]:
    """The C ``apply_mask`` if the optional extension is built and not disabled."""
    if os.environ.get("SIMPLEWS_NO_SPEEDUPS", "") not in ("", "0"):
        return None
    try:
        from ._speedups import apply_mask as c_apply_mask
    except ImportError:
        return None
    return c_apply_mask


_c_apply_mask = _load_speedups()
#: Whether masking runs in the C extension (``SIMPLEWS_NO_SPEEDUPS=1`` forces pure Python).
SPEEDUPS = _c_apply_mask is not None
apply_mask: Callable[[Buffer, bytes], bytes] = _c_apply_mask if _c_apply_mask is not None else _py_apply_mask
"""XOR ``data`` with the 4-byte masking ``key``; returns bytes (masking and unmasking are the same)."""


# --- encoding --------------------------------------------------------------------------

_pack_B2 = struct.Struct("!BB").pack
_pack_B2H = struct.Struct("!BBH").pack
_pack_B2Q = struct.Struct("!BBQ").pack


def encode_header(
    opcode: int,
    length: int,
    *,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: Optional[bytes] = None,
) -> bytes:
    """Build a frame header for a payload of ``length`` bytes."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    m = 0x80 if mask_key is not None else 0
    if length < 126:
        head = _pack_B2(b0, m | length)
    elif length < 65536:
        head = _pack_B2H(b0, m | 126, length)
    else:
        head = _pack_B2Q(b0, m | 127, length)
    if mask_key is not None:
        return head + mask_key
    return head


#: frames up to this size are returned as one joined buffer (one write, one copy)
JOIN_LIMIT = 16384

#: ``_SMALL_HEADERS[first byte][mask bit | length]``: the two header bytes of a frame under 126 bytes
#: (the frames we send: whole messages, fragments, control frames)
_SMALL_HEADERS = {
    first: [bytes((first, second)) for second in range(256)]
    for first in (0x80, 0x81, 0x82, 0x88, 0x89, 0x8A, 0x00, 0x01, 0x02)
}


def encode_frame(
    opcode: int,
    payload: Buffer,
    fin: bool = True,
    rsv1: bool = False,
    mask_key: Optional[bytes] = None,
) -> List[Buffer]:
    """Encode one frame as a list of buffers to write in order; masked when ``mask_key`` is given.

    Frames up to :data:`JOIN_LIMIT` bytes come back as one joined buffer; a larger
    unmasked payload is returned as it is, uncopied, after its header.
    """
    length = len(payload)
    heads = _SMALL_HEADERS.get((0x80 | opcode) if fin else opcode)
    if length < 126 and not rsv1 and heads is not None:
        # the common small frame: its two header bytes come from a table
        if mask_key is None:
            return [heads[length] + payload]
        return [heads[0x80 | length] + mask_key + (apply_mask(payload, mask_key) if length else b"")]
    header = encode_header(opcode, length, fin=fin, rsv1=rsv1, mask_key=mask_key)
    body: Buffer = payload if mask_key is None else apply_mask(payload, mask_key)
    if length <= JOIN_LIMIT:
        return [header + body if isinstance(body, bytes) else header + bytes(body)]
    return [header, body]


# --- parsing ---------------------------------------------------------------------------

#: ``(b0, masked, length, header_size)``: ``b0`` is the first header byte (FIN, RSV1-3, opcode)
Header = Tuple[int, bool, int, int]

FIN, RSV1, RSV2, RSV3 = 0x80, 0x40, 0x20, 0x10

_unpack_H = struct.Struct("!H").unpack_from
_unpack_Q = struct.Struct("!Q").unpack_from


def parse_header(buf: Buffer, offset: int = 0) -> Optional[Header]:
    """Parse the frame header at ``buf[offset:]``; ``None`` if more bytes are needed.

    Raises :class:`RemoteProtocolError` for a header no peer may send
    (fragmented or oversized control frame, 64-bit length with the top bit
    set). Non-minimal length encodings are accepted: RFC 6455 binds senders only.
    """
    avail = len(buf) - offset
    if avail < 2:
        return None
    b0 = buf[offset]
    b1 = buf[offset + 1]
    length = b1 & 0x7F
    if b1 & 0x80:
        masked = True
        size = 6
    else:
        masked = False
        size = 2
    if length >= 126:
        if length == 126:
            if avail < 4:
                return None
            (length,) = _unpack_H(buf, offset + 2)
            size += 2
        else:
            if avail < 10:
                return None
            (length,) = _unpack_Q(buf, offset + 2)
            if length >> 63:
                raise RemoteProtocolError("payload length has the most significant bit set")
            size += 8
    if avail < size:
        return None
    if b0 & 0x08:  # a control frame
        if not b0 & FIN:
            raise RemoteProtocolError("fragmented control frame")
        if length > 125:
            raise RemoteProtocolError("control frame payload longer than 125 bytes")
    return (b0, masked, length, size)


def parse_frame(data: Buffer) -> Tuple[Optional[Frame], int]:
    """Parse one whole frame from the start of ``data``.

    Returns ``(frame, bytes consumed)``, or ``(None, 0)`` if ``data`` holds less
    than one frame. Handy for tests and tools; the protocol parses in place.
    """
    header = parse_header(data)
    if header is None:
        return None, 0
    b0, masked, length, size = header
    end = size + length
    if len(data) < end:
        return None, 0
    if masked:
        key = bytes(data[size - 4 : size])
        payload = apply_mask(memoryview(data)[size:end], key)
    else:
        payload = bytes(data[size:end])
    return Frame(b0 & 0x0F, payload, bool(b0 & FIN), bool(b0 & RSV1), bool(b0 & RSV2), bool(b0 & RSV3)), end


# --- text ---------------------------------------------------------------------------

#: a new incremental UTF-8 decoder, for a text message that arrives in pieces
utf8_decoder = codecs.getincrementaldecoder("utf-8")


def decode_utf8(data: Buffer, decoder: Any = None, final: bool = True) -> str:
    """Decode received UTF-8 text; invalid UTF-8 is a :class:`RemoteProtocolError` with 1007.

    The one place for RFC 6455 section 8.1. Without ``decoder``, ``data`` is a
    whole text; with an incremental ``decoder`` it is the next piece (``final``
    on the last), and a piece that ends in the first two bytes of a UTF-16
    surrogate (ED A0..BF) fails at once, not one piece later (fail fast).
    """
    try:
        if decoder is None:
            # bytes.decode, not str(data, "utf-8"): some interpreters let surrogates through the latter
            return (data if type(data) is not memoryview else bytes(data)).decode("utf-8")
        text: str = decoder.decode(data, final)
    except UnicodeDecodeError:
        raise RemoteProtocolError("invalid UTF-8 in text", 1007) from None
    if not final:
        pending = decoder.getstate()[0]
        if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
            raise RemoteProtocolError("invalid UTF-8 in text (a surrogate)", 1007)
    return text


# --- close frames ----------------------------------------------------------------------


def encode_close(code: Optional[int] = None, reason: str = "") -> bytes:
    """Build a close frame payload; ``None`` for an empty payload (no status code)."""
    if code is None:
        if reason:
            raise LocalProtocolError("a close reason needs a close code")
        return b""
    if not is_valid_close_code(code):
        raise LocalProtocolError(f"invalid close code {code}")
    data = code.to_bytes(2, "big") + reason.encode("utf-8")
    if len(data) > 125:
        raise LocalProtocolError("close reason longer than 123 bytes")
    return data


def parse_close(payload: Buffer) -> Tuple[int, str]:
    """Parse a received close payload into ``(code, reason)``.

    An empty payload means 1005 (no status). Raises :class:`RemoteProtocolError`
    with 1002 for a bad length or code and 1007 for a reason that is not UTF-8.
    """
    if len(payload) == 0:
        return 1005, ""
    if len(payload) == 1:
        raise RemoteProtocolError("close frame payload of 1 byte")
    code = (payload[0] << 8) | payload[1]
    if not is_valid_close_code(code):
        raise RemoteProtocolError(f"invalid close code {code}")
    return code, decode_utf8(payload[2:])
