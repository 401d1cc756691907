"""permessage-deflate (RFC 7692) for both roles, and the extension header grammar.

Sans-I/O: nothing here touches a socket. The handshake calls :func:`client_offer`
and :func:`client_accept` (client) or :func:`server_accept` (server); the protocol
layer then calls :meth:`PerMessageDeflate.compress_message` for each outgoing
message of at least ``threshold`` bytes (sent with RSV1 set on its first frame) and
:meth:`PerMessageDeflate.decompress_frame` for each payload chunk of an incoming
message whose first frame had RSV1 set, with ``fin=True`` on the last chunk.

Memory per connection (zlib, measured with tracemalloc on CPython 3.11 / zlib 1.2.13,
x86-64; ``window_bits`` is our own window for the compressor and the peer's for the
decompressor)::

    compressor   ≈ (1 << (window_bits + 2)) + (1 << (mem_level + 9)) + ~6 KiB
    decompressor ≈ (1 << window_bits) + ~7 KiB

    window_bits  mem_level   compressor   decompressor
    15           8           262 KiB      39 KiB        (zlib and browser defaults)
    12           8           151 KiB      11 KiB
    12           5            38 KiB      11 KiB
    10           4            18 KiB       8 KiB
    9            1             9 KiB       8 KiB

Both objects are created on first use. With context takeover they live as long as
the connection; with ``*_no_context_takeover`` they exist only while a message is
being compressed or inflated, so an idle connection holds no zlib memory. The price
is rebuilding the compressor for every message: about 15 µs at 15/8 (its buffers are
big enough for malloc to mmap them), under 4 µs at 12/8 or smaller. On a Raspberry
Pi, ``server_max_window_bits=12``, ``client_max_window_bits=12`` and ``mem_level=5``
keep both directions of a connection to about 50 KiB.

zlib cannot compress raw deflate with an 8-bit (256-byte) window (``wbits=-8`` is
rejected since zlib 1.2.9, see madler/zlib#171). Like the ``websockets`` library,
we therefore never agree to compress with 8 bits: the client raises
:class:`NegotiationError` when the server limits ``client_max_window_bits`` to 8,
the server declines an offer asking for ``server_max_window_bits=8``, and
configuring 8 for our own direction is a :class:`ValueError`. Inflating a peer's
8-bit stream is fine.
"""

from __future__ import annotations

import dataclasses
import re
import zlib
from typing import Iterable, Iterator, List, Optional, Tuple, Union

from .exceptions import NegotiationError, RemoteProtocolError

_Buffer = Union[bytes, bytearray, memoryview]
#: one ``name[=value]`` extension parameter; the value is None when absent
_Param = Tuple[str, Optional[str]]
#: one extension of a Sec-WebSocket-Extensions header: ``(name, params)``
_Extension = Tuple[str, List[_Param]]

__all__ = [
    "DeflateConfig",
    "PerMessageDeflate",
    "build_extension",
    "client_accept",
    "client_offer",
    "parse_extension_header",
    "resolve_config",
    "server_accept",
]

_NAME = "permessage-deflate"
_TAIL = b"\x00\x00\xff\xff"  # the empty stored block that ends a Z_SYNC_FLUSH
_END_AFTER_FINAL = (_TAIL, b"\x00" + _TAIL)  # allowed after a BFINAL block (7.2.3.4)
_END_AFTER_FINAL_PARTIAL = (b"", b"\x00")
_WINDOW_BITS = {str(bits): bits for bits in range(8, 16)}  # no leading zeros (7.1.2.1)
_ANY = 0  # client_max_window_bits offered without a value

# RFC 6455 section 9.1 with RFC 7230 tokens, quoted-strings and optional whitespace.
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_OWS = r"[ \t]*"
_TOKEN_RE = re.compile(_TOKEN)
_LIST_ITEM_RE = re.compile(rf"(?:[^\",]|{_QUOTED})*")  # up to a comma outside quotes
_PARAM_RE = re.compile(rf"{_OWS};{_OWS}({_TOKEN})(?:{_OWS}={_OWS}(?:({_TOKEN})|({_QUOTED})))?")
_EXTENSION_RE = re.compile(rf"{_OWS}({_TOKEN})((?:{_OWS};{_OWS}{_TOKEN}(?:{_OWS}={_OWS}(?:{_TOKEN}|{_QUOTED}))?)*){_OWS}")
_UNESCAPE_RE = re.compile(r"\\(.)")


@dataclasses.dataclass
class DeflateConfig:
    """User-facing settings; defaults suit browsers and small devices.

    ``*_no_context_takeover`` makes that side start every message with an empty
    window (less memory between messages, worse ratio for similar messages).
    ``server_max_window_bits`` / ``client_max_window_bits`` (8..15) cap the LZ77
    window of that side; ``None`` leaves it to the peer (the client then offers a
    bare ``client_max_window_bits`` so the server may pick one). A server's
    ``client_max_window_bits`` can only be enforced on clients that offer that
    parameter; others are accepted with a 15-bit window.
    ``compress_level`` (-1..9) and ``mem_level`` (1..9) go to ``zlib.compressobj``;
    memory per connection is roughly ``(1 << (window_bits + 2)) + (1 << (mem_level
    + 9))`` bytes to compress and ``(1 << window_bits)`` + ~7 KiB to inflate (the
    module docstring has a table; on a Raspberry Pi, window bits 12 and
    ``mem_level=5`` need about 50 KiB per connection instead of about 300 KiB).
    Messages shorter than ``threshold`` bytes are sent uncompressed.
    """

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: Optional[int] = None
    client_max_window_bits: Optional[int] = None
    compress_level: int = 6
    mem_level: int = 8
    threshold: int = 64

    def __post_init__(self) -> None:
        """Reject values zlib or RFC 7692 cannot use."""
        for name in ("server_max_window_bits", "client_max_window_bits"):
            bits = getattr(self, name)
            if bits is not None and not 8 <= bits <= 15:
                raise ValueError(f"{name} must be between 8 and 15, not {bits!r}")
        if not -1 <= self.compress_level <= 9:
            raise ValueError(f"compress_level must be between -1 and 9, not {self.compress_level!r}")
        if not 1 <= self.mem_level <= 9:
            raise ValueError(f"mem_level must be between 1 and 9, not {self.mem_level!r}")
        if self.threshold < 0:
            raise ValueError(f"threshold must be >= 0, not {self.threshold!r}")


class PerMessageDeflate:
    """Negotiated permessage-deflate state for one connection (one direction each way).

    *local* is what we compress, *remote* what the peer compresses. Not thread-safe:
    the protocol layer serialises sends and has a single reader.
    """

    name = _NAME
    threshold: int

    def __init__(
        self,
        *,
        is_client: bool,
        local_no_context_takeover: bool,
        remote_no_context_takeover: bool,
        local_max_window_bits: int = 15,
        remote_max_window_bits: int = 15,
        compress_level: int = 6,
        mem_level: int = 8,
        threshold: int = 64,
    ) -> None:
        """Store the agreed parameters; zlib objects are created on first use."""
        if not 9 <= local_max_window_bits <= 15:
            raise ValueError(
                f"local_max_window_bits must be between 9 and 15, not {local_max_window_bits!r} "
                "(zlib cannot compress raw deflate with a 256-byte window)"
            )
        if not 8 <= remote_max_window_bits <= 15:
            raise ValueError(f"remote_max_window_bits must be between 8 and 15, not {remote_max_window_bits!r}")
        self.is_client = is_client
        self.local_no_context_takeover = local_no_context_takeover
        self.remote_no_context_takeover = remote_no_context_takeover
        self.local_max_window_bits = local_max_window_bits
        self.remote_max_window_bits = remote_max_window_bits
        self.compress_level = compress_level
        self.mem_level = mem_level
        self.threshold = threshold
        self._compressor: Optional[zlib._Compress] = None
        self._inflater: Optional[zlib._Decompress] = None

    def __repr__(self) -> str:
        """Show the agreed parameters."""
        return (
            f"PerMessageDeflate(is_client={self.is_client}, "
            f"local_no_context_takeover={self.local_no_context_takeover}, "
            f"remote_no_context_takeover={self.remote_no_context_takeover}, "
            f"local_max_window_bits={self.local_max_window_bits}, "
            f"remote_max_window_bits={self.remote_max_window_bits})"
        )

    def compress_message(self, data: _Buffer) -> bytes:
        """Deflate one whole message, Z_SYNC_FLUSH, strip the trailing 00 00 ff ff; reset the
        compressor when we use no_context_takeover.

        An empty message compresses to ``b"\\x00"`` (RFC 7692 section 7.2.3.6).
        """
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(self.compress_level, zlib.DEFLATED, -self.local_max_window_bits, self.mem_level)
            if not self.local_no_context_takeover:
                self._compressor = compressor
        head = compressor.compress(data)
        tail = compressor.flush(zlib.Z_SYNC_FLUSH)
        if tail.endswith(_TAIL):
            if head:
                return head + memoryview(tail)[:-4]
            return tail[:-4]
        return head + tail if head else tail

    def decompress_frame(self, data: _Buffer, *, fin: bool, max_size: Optional[int]) -> bytes:
        """Inflate one frame (or any chunk) of a compressed message; on fin append the tail.

        ``max_size`` is how many bytes this message may still produce (None = no
        limit): inflating stops as soon as the output exceeds it, having produced at
        most ``max_size + 1`` bytes (the protocol's size check then fails the message),
        so a decompression bomb never expands in memory. Bad deflate data, or data after a
        final (BFINAL) block, raises RemoteProtocolError with code 1007. After
        ``fin`` the inflater is dropped when the peer uses no_context_takeover (or
        ended its stream with a BFINAL block), so the next message starts afresh.
        """
        inflater = self._inflater
        if inflater is None:
            inflater = self._inflater = zlib.decompressobj(-self.remote_max_window_bits)
        try:
            if max_size is None:
                out = inflater.decompress(data)
                if fin:
                    end = inflater.decompress(_TAIL)
                    if end:
                        out += end
            else:
                room = max(max_size, 0) + 1  # never 0: zlib reads max_length=0 as "unlimited"
                out = inflater.decompress(data, room)
                if fin and len(out) < room:
                    end = inflater.decompress(_TAIL, room - len(out))
                    if end:
                        out += end
        except zlib.error as exc:
            raise RemoteProtocolError(f"invalid compressed data: {exc}", 1007) from None
        if inflater.eof and inflater.unused_data not in (_END_AFTER_FINAL if fin else _END_AFTER_FINAL_PARTIAL):
            raise RemoteProtocolError("data after the final deflate block", 1007)
        if fin and (self.remote_no_context_takeover or inflater.eof):
            self._inflater = None
        return out


def _split_list(value: str) -> Iterator[Union[str, NegotiationError]]:
    """Yield the elements of one comma-separated header value (commas in quotes kept)."""
    pos, end = 0, len(value)
    while True:
        match = _LIST_ITEM_RE.match(value, pos)  # matches at least the empty string
        stop = match.end() if match else pos
        if stop < end and value[stop] != ",":
            yield NegotiationError(f"unterminated quoted-string in extension header: {value!r}")
            return
        yield value[pos:stop]
        if stop >= end:
            return
        pos = stop + 1


def _parse_element(element: str) -> Optional[_Extension]:
    """Parse ``token *( ";" token [ "=" (token | quoted-string) ] )``; None if blank."""
    if not element.strip(" \t"):
        return None
    match = _EXTENSION_RE.fullmatch(element)
    if match is None:
        raise NegotiationError(f"invalid extension syntax: {element!r}")
    params: List[_Param] = []
    for param in _PARAM_RE.finditer(match.group(2)):
        name, value, quoted = param.groups()
        if quoted is not None:
            value = _UNESCAPE_RE.sub(r"\1", quoted[1:-1])
            if not _TOKEN_RE.fullmatch(value):
                raise NegotiationError(f"quoted value of {name} is not a token: {quoted}")
        params.append((name, value))
    return match.group(1), params


def _extensions(values: Iterable[str]) -> Iterator[Union[_Extension, NegotiationError]]:
    """Yield each extension of several header values, or the error for a malformed one."""
    for value in values:
        for element in _split_list(value):
            if isinstance(element, NegotiationError):
                yield element
                continue
            try:
                extension = _parse_element(element)
            except NegotiationError as exc:
                yield exc
            else:
                if extension is not None:
                    yield extension


def parse_extension_header(values: Iterable[str]) -> List[_Extension]:
    """Parse Sec-WebSocket-Extensions values (RFC 6455 section 9.1) into ``(name, params)``.

    Quoted values are unescaped and must be tokens; empty list elements are
    ignored; any syntax error raises NegotiationError. Names are case-sensitive.
    """
    extensions: List[_Extension] = []
    for item in _extensions(values):
        if isinstance(item, NegotiationError):
            raise item
        extensions.append(item)
    return extensions


def build_extension(name: str, params: Iterable[_Param]) -> str:
    """Format one extension for a Sec-WebSocket-Extensions header (values must be tokens)."""
    return "; ".join([name, *(key if value is None else f"{key}={value}" for key, value in params)])


@dataclasses.dataclass
class _Params:
    """permessage-deflate parameters as read from one offer or response."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: Optional[int] = None
    client_max_window_bits: Optional[int] = None  # _ANY: present without a value


def _read_params(params: List[_Param], *, offer: bool) -> _Params:
    """Validate permessage-deflate parameters; NegotiationError for unknown, duplicate or bad ones."""
    result = _Params()
    seen = set()
    for name, value in params:
        if name in seen:
            raise NegotiationError(f"duplicate {_NAME} parameter {name}")
        seen.add(name)
        if name in ("server_no_context_takeover", "client_no_context_takeover"):
            if value is not None:
                raise NegotiationError(f"{name} takes no value, got {value!r}")
            setattr(result, name, True)
        elif name in ("server_max_window_bits", "client_max_window_bits"):
            if value is None and offer and name == "client_max_window_bits":
                result.client_max_window_bits = _ANY
            elif value in _WINDOW_BITS:
                setattr(result, name, _WINDOW_BITS[value])
            else:
                raise NegotiationError(f"{name} needs a value from 8 to 15, got {value!r}")
        else:
            raise NegotiationError(f"unknown {_NAME} parameter {name}")
    return result


def _check_local_bits(bits: Optional[int], name: str) -> None:
    """Refuse a configured 8-bit window for the direction we compress."""
    if bits == 8:
        raise ValueError(f"{name}=8 is not supported for our own compressor (zlib needs 9..15)")


def resolve_config(compression: object, *, is_client: bool) -> Optional[DeflateConfig]:
    """Check a ``compression=`` option before any I/O; return the config to use, or None for off.

    Accepts ``"deflate"`` (default settings), ``None`` or a :class:`DeflateConfig`,
    which is re-validated and copied (later changes to the caller's object have no
    effect). Raises ValueError (TypeError for a wrong type) for anything else,
    including an 8-bit window for the direction we compress.
    """
    if compression is None:
        return None
    if isinstance(compression, str):
        if compression != "deflate":
            raise ValueError(f"unsupported compression {compression!r}: use 'deflate', None or a DeflateConfig")
        return DeflateConfig()
    if not isinstance(compression, DeflateConfig):
        raise TypeError(f"compression must be 'deflate', None or a DeflateConfig, not {type(compression).__name__}")
    config = dataclasses.replace(compression)  # runs __post_init__ again
    if is_client:
        _check_local_bits(config.client_max_window_bits, "client_max_window_bits")
    else:
        _check_local_bits(config.server_max_window_bits, "server_max_window_bits")
    return config


def client_offer(config: DeflateConfig) -> str:
    """The Sec-WebSocket-Extensions value a client sends, e.g. 'permessage-deflate; client_max_window_bits'."""
    _check_local_bits(config.client_max_window_bits, "client_max_window_bits")
    params: List[_Param] = []
    if config.server_no_context_takeover:
        params.append(("server_no_context_takeover", None))
    if config.client_no_context_takeover:
        params.append(("client_no_context_takeover", None))
    if config.server_max_window_bits is not None:
        params.append(("server_max_window_bits", str(config.server_max_window_bits)))
    bits = config.client_max_window_bits
    params.append(("client_max_window_bits", None if bits is None else str(bits)))
    return build_extension(_NAME, params)


def client_accept(values: List[str], config: DeflateConfig) -> Optional[PerMessageDeflate]:
    """Check the server's Sec-WebSocket-Extensions response values (may be several header lines,
    each comma separated). Return None if the server did not accept permessage-deflate; raise
    NegotiationError for anything we did not offer, unknown/duplicate/invalid params, more than
    one permessage-deflate, or window bits out of range / not what we asked."""
    _check_local_bits(config.client_max_window_bits, "client_max_window_bits")
    agreed: Optional[PerMessageDeflate] = None
    for name, params in parse_extension_header(values):
        if name != _NAME:
            raise NegotiationError(f"server accepted extension {name!r}, which we did not offer")
        if agreed is not None:
            raise NegotiationError(f"server accepted {_NAME} more than once")
        agreed = _client_agree(_read_params(params, offer=False), config)
    return agreed


def _client_agree(response: _Params, config: DeflateConfig) -> PerMessageDeflate:
    """Compare the server's response with our offer (RFC 7692 section 7.1)."""
    if config.server_no_context_takeover and not response.server_no_context_takeover:
        raise NegotiationError("server did not confirm server_no_context_takeover")
    remote_bits = response.server_max_window_bits
    if config.server_max_window_bits is not None:
        if remote_bits is None:
            raise NegotiationError("server did not confirm server_max_window_bits")
        if remote_bits > config.server_max_window_bits:
            raise NegotiationError(f"server_max_window_bits={remote_bits} exceeds the {config.server_max_window_bits} we asked for")
    local_bits = 15 if config.client_max_window_bits is None else config.client_max_window_bits
    if response.client_max_window_bits is not None:
        if response.client_max_window_bits > local_bits:
            raise NegotiationError(f"client_max_window_bits={response.client_max_window_bits} exceeds the {local_bits} we offered")
        if response.client_max_window_bits == 8:
            raise NegotiationError("client_max_window_bits=8 is not supported (zlib cannot compress with 256 bytes)")
        local_bits = response.client_max_window_bits
    return PerMessageDeflate(
        is_client=True,
        local_no_context_takeover=config.client_no_context_takeover or response.client_no_context_takeover,
        remote_no_context_takeover=response.server_no_context_takeover,
        local_max_window_bits=local_bits,
        remote_max_window_bits=remote_bits or 15,
        compress_level=config.compress_level,
        mem_level=config.mem_level,
        threshold=config.threshold,
    )


def server_accept(values: List[str], config: DeflateConfig) -> Optional[Tuple[str, PerMessageDeflate]]:
    """Pick the first acceptable permessage-deflate offer among the client's Sec-WebSocket-Extensions
    values (several offers in one header, several header lines). Return (response header value,
    state), or None if none is acceptable. Invalid or duplicate parameters make THAT offer declined
    (not an exception). Honour client_max_window_bits with and without a value,
    server_max_window_bits, both no_context_takeover flags, per RFC 7692 section 7.1."""
    _check_local_bits(config.server_max_window_bits, "server_max_window_bits")
    for item in _extensions(values):
        if isinstance(item, NegotiationError) or item[0] != _NAME:
            continue
        try:
            offer = _read_params(item[1], offer=True)
        except NegotiationError:
            continue
        agreed = _server_agree(offer, config)
        if agreed is not None:
            return agreed
    return None


def _server_agree(offer: _Params, config: DeflateConfig) -> Optional[Tuple[str, PerMessageDeflate]]:
    """Answer one valid offer (RFC 7692 section 7.1), or None to decline it."""
    server_nct = offer.server_no_context_takeover or config.server_no_context_takeover
    client_nct = offer.client_no_context_takeover or config.client_no_context_takeover
    server_bits = offer.server_max_window_bits
    if config.server_max_window_bits is not None:
        server_bits = min(server_bits or 15, config.server_max_window_bits)
    if server_bits == 8:
        return None  # the client wants a 256-byte window zlib cannot compress with
    client_bits = offer.client_max_window_bits  # None: the client cannot be limited
    if client_bits is not None:
        if config.client_max_window_bits is not None:
            client_bits = min(client_bits or 15, config.client_max_window_bits)
        elif client_bits == _ANY:
            client_bits = None
    params: List[_Param] = []
    if server_nct:
        params.append(("server_no_context_takeover", None))
    if client_nct:
        params.append(("client_no_context_takeover", None))
    if server_bits is not None:
        params.append(("server_max_window_bits", str(server_bits)))
    if client_bits is not None:
        params.append(("client_max_window_bits", str(client_bits)))
    state = PerMessageDeflate(
        is_client=False,
        local_no_context_takeover=server_nct,
        remote_no_context_takeover=client_nct,
        local_max_window_bits=server_bits or 15,
        remote_max_window_bits=client_bits or 15,
        compress_level=config.compress_level,
        mem_level=config.mem_level,
        threshold=config.threshold,
    )
    return build_extension(_NAME, params), state
