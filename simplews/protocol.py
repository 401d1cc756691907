"""The connection state machine, Sans-I/O: bytes in -> events out, sends -> bytes out.

:class:`Protocol` owns every RFC 6455 rule that applies after the handshake:
frame validation, fragment reassembly, UTF-8 validation, size limits,
automatic fragmentation, masking, pongs, the close handshake, the end of the
TCP stream and extensions. It never raises out of :meth:`Protocol.receive_data`:
a peer's violation is recorded in :attr:`Protocol.failure` with the close code
to send, and the close frame is queued in :meth:`Protocol.data_to_send` for
the shell to write.
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import os
from typing import Any, Iterator, List, Optional, Tuple, Union

from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LocalProtocolError,
    PayloadTooBig,
    RemoteProtocolError,
)
from .frames import (
    FIN,
    KNOWN_OPCODES,
    RSV1,
    RSV2,
    RSV3,
    apply_mask,
    decode_utf8,
    encode_close,
    encode_frame,
    parse_close,
    parse_header,
    utf8_decoder,
)

__all__ = [
    "State",
    "Message",
    "Fragment",
    "Ping",
    "Pong",
    "Close",
    "Event",
    "Protocol",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_MAX_FRAGMENTS",
    "DEFAULT_FRAME_SIZE",
]

logger = logging.getLogger("simplews")

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
#: Frames one incoming message may have. Bounds the work a peer can cause with
#: empty or tiny fragments; a simplews sender never needs more than
#: ``size / frame_size`` (16 for a 1 MiB message at the default frame size).
DEFAULT_MAX_FRAGMENTS = 4096
#: Outgoing messages above this size are split into frames of this size: it
#: bounds the memory needed to mask a frame (we never copy a whole large message)
#: and stays within the per-frame limits of small embedded peers.
DEFAULT_FRAME_SIZE = 64 * 1024

_CONT, _TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
#: pongs owed at once: a newer ping then replaces the oldest pong not written yet
_MAX_PONGS = 16
#: pieces of an incoming message smaller than this are gathered into one buffer
_PART_SIZE = 4096

Data = Union[str, bytes, bytearray, memoryview]


def _truncate_reason(reason: str, limit: int = 123) -> str:
    """Cut a close reason to at most ``limit`` UTF-8 bytes without splitting a character."""
    data = reason.encode("utf-8")
    if len(data) <= limit:
        return reason
    return data[:limit].decode("utf-8", "ignore")


class State(enum.IntEnum):
    """Where the connection is in its life after the handshake."""

    OPEN = 1
    CLOSING = 2  # a close frame was sent or the connection failed; waiting for the end
    CLOSED = 3  # both close frames exchanged, or the transport is gone


# the members as plain module names: an Enum attribute lookup costs four of these, on every frame
OPEN, CLOSING, CLOSED = State.OPEN, State.CLOSING, State.CLOSED

@dataclasses.dataclass
class Message:
    """A complete data message: ``str`` for text, ``bytes`` for binary."""

    __slots__ = ("data",)  # one per message received: no instance dictionary
    data: Union[str, bytes]


@dataclasses.dataclass
class Fragment:
    """A piece of a data message being streamed (see :meth:`Protocol.stream_next`); ``fin`` on its last."""

    data: Union[str, bytes]
    fin: bool


@dataclasses.dataclass
class Ping:
    """A ping from the peer (the pong is already queued)."""

    data: bytes


@dataclasses.dataclass
class Pong:
    """A pong from the peer."""

    data: bytes


@dataclasses.dataclass
class Close:
    """The peer's close frame (``1005`` when it carried no code)."""

    code: int
    reason: str


Event = Union[Message, Fragment, Ping, Pong, Close]


def _payload(data: Data, text: Optional[bool]) -> Tuple[int, Any]:
    """The opcode and bytes of a message to send: ``str`` is text, bytes-like binary, unless ``text`` says otherwise."""
    if type(data) is bytes and text is None:  # the common binary case: nothing to check
        return _BINARY, data
    if type(data) is str or isinstance(data, str):
        try:
            payload: Any = data.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None
        opcode = _BINARY if text is False else _TEXT
    elif isinstance(data, (bytes, bytearray, memoryview)):
        payload = data
        if isinstance(data, memoryview) and data.nbytes != len(data):
            payload = data.cast("B")  # len() counts items, frame lengths count bytes
        if text:
            try:
                decode_utf8(payload)
            except RemoteProtocolError:
                raise LocalProtocolError("text=True needs valid UTF-8") from None
        opcode = _TEXT if text else _BINARY
    else:
        raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")
    return opcode, payload


class _Incoming:
    """The data message being received: fragment reassembly, UTF-8 validation, size limits."""

    __slots__ = (
        "max_size", "max_fragments", "extension", "frame_left", "fin", "key", "offset",
        "opcode", "compressed", "parts", "size", "frames", "decoder", "streaming", "default_max", "stream_all",
    )

    def __init__(self, max_size: Optional[int], max_fragments: Optional[int], extension: Any) -> None:
        self.max_size = self.default_max = max_size
        self.streaming = False  # the message is handed out in fragments as they arrive
        self.stream_all = False  # ... and so is every later one
        self.max_fragments = max_fragments
        self.extension = extension
        self.frame_left = -1  # payload bytes of the current data frame still to come (-1: between frames)
        self.fin = False
        self.key: Optional[bytes] = None
        self.offset = 0
        self.opcode = 0  # of the message in progress (0: none)
        self.compressed = False
        # the payload so far: large pieces as they came, small ones gathered, so that the list
        # grows with the size of the message, never with how many frames or reads it took
        self.parts: List[Any] = []
        self.size = 0
        self.frames = 0
        self.decoder: Any = None

    def check(self, opcode: int, rsv1: bool, length: int) -> None:
        """The rules for a data frame's header: fragment order, frames per message, size (1009)."""
        if opcode == _CONT:
            if not self.opcode:
                raise RemoteProtocolError("continuation frame without a message to continue")
            limit = self.max_fragments
            if limit is not None and self.frames >= limit and not self.streaming:
                raise PayloadTooBig(f"message has more than {limit} frames")
            if not self.compressed:
                self.account(length)
        elif self.opcode:
            raise RemoteProtocolError("new data frame before the fragmented message ended")
        elif not rsv1:
            self.size = 0
            self.account(length)

    def account(self, added: int) -> None:
        """The size limit (decompressed size): check it before taking ``added`` more bytes."""
        limit = self.max_size
        if limit is not None and self.size + added > limit:
            raise PayloadTooBig(f"message exceeds {limit} bytes")

    def start_frame(self, opcode: int, fin: int, rsv1: int, key: Optional[bytes], length: int) -> None:
        """Begin receiving a data frame's payload."""
        self.frame_left = length
        self.fin = bool(fin)
        self.key = key
        self.offset = 0
        if opcode:
            self.opcode = opcode
            self.compressed = bool(rsv1)
            self.size = self.frames = 0
        self.frames += 1
        if not self.compressed:
            self.size += length

    def feed(self, buf: Any, pos: int, end: int, events: List[Event]) -> int:
        """Take as much of the current frame's payload as ``buf[pos:end]`` holds; return where it stopped."""
        take = self.frame_left if self.frame_left <= end - pos else end - pos
        chunk = buf[pos : pos + take]
        if self.key is not None:
            key = self.key
            shift = self.offset & 3
            if shift:
                key = key[shift:] + key[:shift]
            chunk = apply_mask(chunk, key)
        self.offset += take
        self.frame_left -= take
        self.payload(chunk, events)
        return pos + take

    def payload(self, chunk: Any, events: List[Event]) -> None:
        """Take the next piece of a data frame's payload; emit the message after its last piece."""
        frame_done = self.frame_left == 0
        if frame_done:
            self.frame_left = -1
        last = frame_done and self.fin
        if self.compressed:
            limit = self.max_size
            chunk = self.extension.decompress_frame(chunk, fin=last, max_size=None if limit is None else limit - self.size)
            self.account(len(chunk))
            self.size += len(chunk)
        parts = self.parts
        text = self.opcode == _TEXT
        if self.streaming:
            self.fragment(chunk, text, last, events)
            return
        if not parts and last:  # the whole message in one piece: no copy, no incremental decoding
            self.end_message()
            events.append(Message(decode_utf8(chunk) if text else bytes(chunk)))
            return
        if text:
            if self.decoder is None:
                self.decoder = utf8_decoder()
            decode_utf8(chunk, self.decoder, last)  # fail fast on invalid UTF-8
        if len(chunk) >= _PART_SIZE:
            parts.append(chunk if type(chunk) is bytes else bytes(chunk))
        elif parts and type(parts[-1]) is bytearray:
            parts[-1] += chunk
        else:
            parts.append(bytearray(chunk))
        if last:
            self.end_message()
            data = b"".join(parts)
            events.append(Message(decode_utf8(data) if text else data))

    def fragment(self, chunk: Any, text: bool, last: bool, events: List[Event]) -> None:
        """Hand out the next piece of a streamed message (text split on UTF-8 character boundaries)."""
        if text:
            if self.decoder is None:
                self.decoder = utf8_decoder()
            piece: Union[str, bytes] = decode_utf8(chunk, self.decoder, last)
        else:
            piece = bytes(chunk)
        if last:
            self.end_message()
        if piece or last:
            events.append(Fragment(piece, last))

    def stream(self, max_size: Optional[int], every: bool = False) -> List[Event]:
        """Stream the next message (``every``: and all later ones), or the rest of the one in progress."""
        self.streaming = True
        self.max_size = max_size
        if every:
            self.stream_all, self.default_max = True, max_size
        events: List[Event] = []
        if self.parts:  # what came of the message in progress before streaming was asked for
            data, self.parts = b"".join(self.parts), []
            if self.opcode == _TEXT:
                self.decoder = None  # decoded afresh: the validating decoder kept no text
            self.account(0)
            self.fragment(data, self.opcode == _TEXT, False, events)
        return events

    def end_message(self) -> None:
        """Forget the message in progress."""
        if self.streaming and not self.stream_all:
            self.streaming = False
            self.max_size = self.default_max
        self.opcode = 0
        self.compressed = False
        if self.parts:
            self.parts = []
        self.decoder = None


def _mask_keys() -> Iterator[bytes]:
    """Fresh masking keys from a pool refilled from ``os.urandom`` (one syscall per 256 keys)."""
    while True:
        pool = os.urandom(1024)
        for pos in range(0, 1024, 4):
            yield pool[pos : pos + 4]


#: a server never masks
_NO_KEYS: Iterator[bytes] = iter(())


class Protocol:
    """RFC 6455 state machine for one side of an open connection."""

    def __init__(
        self,
        is_client: bool,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        max_fragments: Optional[int] = DEFAULT_MAX_FRAGMENTS,
        frame_size: Optional[int] = DEFAULT_FRAME_SIZE,
        extension: Any = None,
    ) -> None:
        self.is_client = is_client
        self.max_message_size = max_message_size
        self.max_fragments = max_fragments
        self.frame_size = frame_size
        #: negotiated permessage-deflate state (``simplews.deflate.PerMessageDeflate``)
        self.extension = extension
        self.state = OPEN
        #: the peer's violation, once one happened
        self.failure: Optional[RemoteProtocolError] = None
        self.close_rcvd: Optional[Close] = None
        self.close_sent: Optional[Close] = None
        #: set by a shell that hands messages to an application: the close frame failing
        #: the connection then waits for :meth:`release_failure`, so that messages received
        #: before the violation can still be answered first (Autobahn 3.2, 4.1.3, 5.x)
        self.defer_failure_close = False
        #: a peer's violation was recorded but its close frame is not queued yet
        self.failure_deferred = False
        self.logger = logger
        #: answer pings at once (off: the application answers with :meth:`send_pong`)
        self.auto_pong = True
        self._pending: List[Any] = []
        self.has_pending = False  #: whether :meth:`data_to_send` has anything (asked on every write)
        self._pongs: List[bytes] = []  # pongs owed, at most _MAX_PONGS (RFC 6455 5.5.3)
        self._eof_sent = False
        self._mask_keys = _mask_keys() if is_client else _NO_KEYS
        self._buf = bytearray()
        self._in = _Incoming(max_message_size, max_fragments, extension)

    @property
    def logger(self) -> Any:
        """Where the frame-level DEBUG records go (a connection sets its own logger here)."""
        return self._logger

    @logger.setter
    def logger(self, value: Any) -> None:
        self._logger = value
        self._debug = value.isEnabledFor(logging.DEBUG)

    # --- receiving ------------------------------------------------------------------

    def receive_data(self, data: Union[bytes, bytearray, memoryview]) -> List[Event]:
        """Feed bytes read from the transport; return the events they complete.

        ``b""`` signals end of stream. Never raises: protocol violations set
        :attr:`failure` and queue a close frame.
        """
        events: List[Event] = []
        if not data:
            self._eof()
            return events
        if self.failure is not None or self.close_rcvd is not None or self.state is CLOSED:
            return events  # RFC 6455 5.5.1: nothing after the close frame counts
        if self._buf:
            self._buf += data
            buf: Any = self._buf
        else:
            buf = data
        try:
            pos = self._parse(buf, events)
        except RemoteProtocolError as exc:
            self._fail(exc)
            self._buf = bytearray()
            return events
        if pos < len(buf):
            if buf is self._buf:
                if pos:
                    del buf[:pos]
            else:
                self._buf = bytearray(buf[pos:])
        elif self._buf:
            self._buf = bytearray()
        return events

    def _parse(self, buf: Any, events: List[Event]) -> int:
        """Parse as much of ``buf`` as possible; return how far it got."""
        pos = 0
        end = len(buf)
        want_mask = not self.is_client
        limit = self.max_message_size
        incoming = self._in
        while pos < end and self.close_rcvd is None:
            if incoming.frame_left >= 0:  # inside a data frame's payload
                pos = incoming.feed(buf, pos, end, events)
                continue
            header = parse_header(buf, pos)
            if header is None:
                break
            b0, masked, length, size = header
            start = pos + size
            stop = start + length
            if (
                (b0 == 0x81 or b0 == 0x82)
                and masked is want_mask
                and stop <= end
                and not incoming.opcode
                and not incoming.streaming
                and (limit is None or length <= limit)
            ):
                # fast path: a whole text or binary message in one frame that passes every rule
                payload = buf[start:stop]
                if masked and length:
                    payload = apply_mask(payload, bytes(buf[start - 4 : start]))
                pos = stop
                events.append(Message(decode_utf8(payload) if b0 == 0x81 else bytes(payload)))
                continue
            opcode = self._check_header(b0, masked, length)
            if opcode >= 8:  # control frames are handled whole
                if stop > end:
                    break
                payload = buf[start:stop]
                if masked and length:
                    payload = apply_mask(payload, bytes(buf[start - 4 : start]))
                pos = stop
                self._control(opcode, bytes(payload), events)
                continue
            incoming.start_frame(opcode, b0 & FIN, b0 & RSV1, bytes(buf[start - 4 : start]) if masked else None, length)
            pos = start
            if length == 0:
                incoming.payload(b"", events)
        return pos

    def stream_next(self, max_size: Optional[int], every: bool = False) -> List[Event]:
        """Hand out the next data message (or the rest of the one in progress) as :class:`Fragment` events.

        ``max_size`` replaces ``max_message_size`` for that message (``None``: no
        limit) and ``max_fragments`` does not apply to it; ``every``: to every
        later message too. Returns the fragment of what already arrived, if any.
        """
        try:
            return self._in.stream(max_size, every)
        except RemoteProtocolError as exc:  # what arrived already exceeds max_size
            self._fail(exc)
            return []

    @property
    def receiving_message(self) -> bool:
        """Whether part of a data message arrived and the rest is still to come."""
        return self._in.opcode != 0

    def stream_cancel(self) -> None:
        """Take back :meth:`stream_next` if the message has not started (it is then received whole)."""
        if not self._in.opcode:
            self._in.end_message()

    def _check_header(self, b0: int, masked: bool, length: int) -> int:
        """Apply RFC 6455 section 5 rules to a frame header; return its opcode."""
        if masked is self.is_client:
            raise RemoteProtocolError("masked frame from server" if self.is_client else "unmasked frame from client")
        opcode = b0 & 0x0F
        if b0 & (RSV1 | RSV2 | RSV3):
            if b0 & (RSV2 | RSV3):
                raise RemoteProtocolError("RSV2 or RSV3 set without a negotiated extension")
            if self.extension is None:
                raise RemoteProtocolError("RSV1 set without a negotiated extension")
            if opcode == _CONT or opcode >= 8:
                raise RemoteProtocolError("RSV1 set on a continuation or control frame")
        if opcode not in KNOWN_OPCODES:
            raise RemoteProtocolError(f"reserved opcode {opcode}")
        if opcode < 8:
            if self._debug:
                self.logger.debug("< frame opcode=%d fin=%s len=%d", opcode, b0 >> 7, length)
            self._in.check(opcode, bool(b0 & RSV1), length)
        return opcode

    def _control(self, opcode: int, payload: bytes, events: List[Event]) -> None:
        """Handle a complete control frame."""
        if self._debug:
            self.logger.debug("< control opcode=%d len=%d", opcode, len(payload))
        if opcode == _PING:
            if self.close_sent is None and self.auto_pong:
                # RFC 6455 5.5.3 lets us skip pongs not sent yet: a ping flood from a peer that
                # does not read costs a few pending pongs, and the latest ping is always answered
                pongs = self._pongs
                if len(pongs) >= _MAX_PONGS:
                    del pongs[0]
                pongs.append(self._frame(_PONG, payload)[0])
                self.has_pending = True
            events.append(Ping(payload))
        elif opcode == _PONG:
            events.append(Pong(payload))
        else:
            code, reason = parse_close(payload)
            self.close_rcvd = Close(code, reason)
            if self.close_sent is None:
                reply_code = None if code == 1005 else code
                self._send_close(reply_code, reason if reply_code is not None else "")
            self.state = CLOSED
            events.append(self.close_rcvd)

    def _fail(self, exc: RemoteProtocolError, defer: bool = True) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, ignore the rest."""
        self.failure = exc
        self._in.end_message()
        if self._debug:
            self.logger.debug("protocol failure %d: %s", exc.code, exc)
        if defer and self.defer_failure_close and self.close_sent is None and self.state is OPEN:
            self.failure_deferred = True
            return
        self._close_for_failure()

    def release_failure(self) -> None:
        """Queue the close frame of a deferred failure (see :attr:`defer_failure_close`)."""
        if self.failure_deferred:
            self.failure_deferred = False
            self._close_for_failure()

    def _close_for_failure(self) -> None:
        """Queue the close frame with the failure's code and stop sending data."""
        exc = self.failure
        assert exc is not None
        if self.close_sent is None and self.state is OPEN:
            self._send_close(exc.code, _truncate_reason(str(exc)))
        self.state = CLOSING if self.state is OPEN else self.state

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection from our side (e.g. keepalive timeout) with ``code``."""
        if self.failure is None and self.state is not CLOSED:
            self._fail(RemoteProtocolError(reason, code), defer=False)

    def _eof(self) -> None:
        """The transport reached end of stream."""
        self._pending.clear()
        self._pongs = []
        self.has_pending = False
        # a peer that ended its side may still read: it hears why the connection failed
        self.release_failure()
        self.state = CLOSED

    # --- sending --------------------------------------------------------------------

    def data_to_send(self) -> List[Any]:
        """Control frames to write before any further data frame (pongs, pings, close), in order."""
        out, self._pending = self._pending, []
        self.has_pending = False
        if self._pongs:
            out[:0], self._pongs = self._pongs, []  # a close frame, if one is queued, stays last
        return out

    def eof_to_send(self) -> bool:
        """Whether the transport should now be half-closed, after what :meth:`data_to_send` gave.

        True once. The server closes the TCP connection first (RFC 6455 7.1.1):
        as soon as it has sent its close frame and received the client's, or
        sent the close frame that fails the connection. A client waits for the
        server's end of stream (the shell bounds that wait by ``close_timeout``).
        """
        if self._eof_sent or self.is_client or self.close_sent is None or self.has_pending:
            return False
        if self.close_rcvd is None and (self.failure is None or self.failure_deferred):
            return False
        self._eof_sent = True
        return True

    def send_message(self, data: Data, *, text: Optional[bool] = None, compress: bool = True) -> List[Any]:
        """Encode a whole message (fragmented above ``frame_size``) into buffers.

        ``str`` becomes a text message and bytes-like a binary one unless
        ``text`` says otherwise (``text=True`` needs valid UTF-8 bytes).
        ``compress=False`` sends it uncompressed even if compression was negotiated.
        """
        opcode, payload, rsv1 = self._prepare(data, text, compress)
        size = self.frame_size
        if size is None or len(payload) <= size:
            return encode_frame(opcode, payload, True, rsv1, next(self._mask_keys) if self.is_client else None)
        return [buf for frame in self._fragments(opcode, payload, rsv1) for buf in frame]

    def send_message_frames(self, data: Data, *, text: Optional[bool] = None, compress: bool = True) -> Iterator[List[Any]]:
        """The frames of one message, each encoded (and masked) only when it is asked for.

        For large messages: they go out frame by frame with control frames
        between them, and masking never copies more than one frame. Raises
        :class:`ConnectionClosed` at the next frame once a close was sent.
        """
        opcode, payload, rsv1 = self._prepare(data, text, compress)
        return self._fragments(opcode, payload, rsv1)

    def send_fragment(self, payload: Any, *, text: bool, first: bool, fin: bool) -> List[Any]:
        """One frame of a message sent in pieces, uncompressed (``first``: it opens the message).

        Raises :class:`ConnectionClosed` once a close was sent: no data frame goes after it.
        """
        if self.state is not OPEN:
            raise self.closed_exception()
        return self._frame((_TEXT if text else _BINARY) if first else _CONT, payload, fin)

    def _prepare(self, data: Data, text: Optional[bool], compress: bool = True) -> Tuple[int, Any, bool]:
        """Check and encode a message's payload (compressed if negotiated): ``(opcode, payload, rsv1)``."""
        if self.state is not OPEN:
            raise self.closed_exception()
        opcode, payload = _payload(data, text)
        ext = self.extension
        rsv1 = compress and ext is not None and len(payload) >= ext.threshold
        if rsv1:
            payload = ext.compress_message(payload)
        if self._debug:
            self.logger.debug("> message opcode=%d len=%d", opcode, len(payload))
        return opcode, payload, rsv1

    def _fragments(self, opcode: int, payload: Any, rsv1: bool) -> Iterator[List[Any]]:
        """Frame ``payload`` in pieces of ``frame_size``, lazily; stop once a close was sent."""
        size = self.frame_size or max(len(payload), 1)
        view = memoryview(payload).cast("B") if not isinstance(payload, bytes) else memoryview(payload)
        total = len(view)
        for start in range(0, max(total, 1), size):
            if start and self.close_sent is not None:
                raise self.closed_exception()
            stop = start + size
            yield self._frame(opcode if start == 0 else _CONT, view[start:stop], stop >= total, rsv1 and start == 0)

    def send_ping(self, data: Union[str, bytes] = b"") -> None:
        """Queue a ping (at most 125 bytes) in :meth:`data_to_send`."""
        self._pending += self._control_out(_PING, data)
        self.has_pending = True

    def send_pong(self, data: Union[str, bytes] = b"") -> None:
        """Queue an unsolicited pong (at most 125 bytes) in :meth:`data_to_send`."""
        self._pending += self._control_out(_PONG, data)
        self.has_pending = True

    def _control_out(self, opcode: int, data: Union[str, bytes]) -> List[Any]:
        """Encode a ping or pong after checking the state and its size."""
        if self.state is not OPEN:
            raise self.closed_exception()
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(payload) > 125:
            raise LocalProtocolError("control frame payload longer than 125 bytes")
        return self._frame(opcode, payload)

    def send_close(self, code: Optional[int] = 1000, reason: str = "") -> None:
        """Start the close handshake: queue our close frame in :meth:`data_to_send`.

        Nothing new is queued if a close was already sent; a peer's violation
        held back (:attr:`failure_deferred`) decides the code instead.
        """
        if self.failure_deferred:
            self.release_failure()
            return
        if self.close_sent is not None or self.state is CLOSED:
            return
        payload = encode_close(code, reason)  # validates before changing state
        self._send_close_payload(code, reason, payload)

    def _send_close(self, code: Optional[int], reason: str) -> None:
        """Queue our close frame in the pending output."""
        self._send_close_payload(code, reason, encode_close(code, reason))

    def _send_close_payload(self, code: Optional[int], reason: str, payload: bytes) -> None:
        self.close_sent = Close(1005 if code is None else code, reason)
        if self.state is OPEN:
            self.state = CLOSING
        self._pending += self._frame(_CLOSE, payload)
        self.has_pending = True

    def _frame(self, opcode: int, payload: Any, fin: bool = True, rsv1: bool = False) -> List[Any]:
        """Encode one frame, masked with a fresh key when we are the client."""
        return encode_frame(opcode, payload, fin, rsv1, next(self._mask_keys) if self.is_client else None)

    # --- closing --------------------------------------------------------------------

    @property
    def close_code(self) -> int:
        """The close code to report: the peer's, else ours on failure, else 1006."""
        if self.close_rcvd is not None:
            return self.close_rcvd.code
        if self.failure is not None:
            return self.failure.code
        return 1006

    @property
    def close_reason(self) -> str:
        """The close reason matching :attr:`close_code`."""
        if self.close_rcvd is not None:
            return self.close_rcvd.reason
        if self.failure is not None:
            return str(self.failure)
        return ""

    def closed_exception(self) -> ConnectionClosed:
        """The :class:`ConnectionClosed` subclass describing how the connection ended."""
        code = self.close_code
        sent = self.close_sent.code if self.close_sent is not None else None
        ok = self.failure is None and self.close_rcvd is not None and code in (1000, 1001, 1005)
        cls = ConnectionClosedOK if ok else ConnectionClosedError
        return cls(code, self.close_reason, sent_code=sent)

    def abort(self) -> None:
        """Mark the transport as gone (after an error or a timeout)."""
        self._eof()
