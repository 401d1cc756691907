"""The connection state machine, Sans-I/O: bytes in -> events out, sends -> bytes out.

:class:`Protocol` owns every RFC 6455 rule that applies after the handshake:
frame validation, fragment reassembly, incremental UTF-8 validation, size
limits, automatic fragmentation, masking, the close handshake and extensions.
It never raises out of :meth:`Protocol.receive_data`: a peer's violation is
recorded in :attr:`Protocol.failure` with the close code to send, and the close
frame is queued in :meth:`Protocol.data_to_send` for the shell to write.
"""

from __future__ import annotations

import codecs
import dataclasses
import enum
import logging
import os
from typing import Any, List, Optional, Union

from .exceptions import (
    ConnectionClosed,
    ConnectionClosedError,
    ConnectionClosedOK,
    LocalProtocolError,
    PayloadTooBig,
    RemoteProtocolError,
)
from .frames import KNOWN_OPCODES, apply_mask, encode_close, encode_header, parse_close, parse_header

__all__ = [
    "State",
    "Message",
    "Ping",
    "Pong",
    "Close",
    "Event",
    "Protocol",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "DEFAULT_FRAME_SIZE",
]

logger = logging.getLogger("simplews")

DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024
#: Outgoing messages above this size are split into frames of this size: it
#: bounds the memory needed to mask a frame (we never copy a whole large message)
#: and stays within the per-frame limits of small embedded peers.
DEFAULT_FRAME_SIZE = 64 * 1024

_TEXT, _BINARY, _CLOSE, _PING, _PONG = 0x1, 0x2, 0x8, 0x9, 0xA
_utf8_decoder = codecs.getincrementaldecoder("utf-8")

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


@dataclasses.dataclass
class Message:
    """A complete data message: ``str`` for text, ``bytes`` for binary."""

    data: Union[str, bytes]


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


Event = Union[Message, Ping, Pong, Close]


class Protocol:
    """RFC 6455 state machine for one side of an open connection."""

    def __init__(
        self,
        is_client: bool,
        *,
        max_message_size: Optional[int] = DEFAULT_MAX_MESSAGE_SIZE,
        frame_size: Optional[int] = DEFAULT_FRAME_SIZE,
        extension: Any = None,
    ) -> None:
        self.is_client = is_client
        self.max_message_size = max_message_size
        self.frame_size = frame_size
        #: negotiated permessage-deflate state (``simplews.deflate.PerMessageDeflate``)
        self.extension = extension
        self.state = State.OPEN
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
        self._debug = logger.isEnabledFor(logging.DEBUG)
        self._pending: List[Any] = []
        self._keys = b""
        self._key_pos = 0
        self._buf = bytearray()
        # the data frame being received
        self._in_frame = False
        self._f_opcode = 0
        self._f_fin = False
        self._f_key: Optional[bytes] = None
        self._f_left = 0
        self._f_offset = 0
        # the message being reassembled
        self._m_opcode = 0  # 0: no message in progress
        self._m_compressed = False
        self._m_parts: List[Any] = []
        self._m_size = 0
        self._m_decoder: Any = None

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
        if self.failure is not None or self.close_rcvd is not None or self.state is State.CLOSED:
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
            rest = buf[pos:]
            self._buf = rest if isinstance(rest, bytearray) else bytearray(rest)
        elif self._buf:
            self._buf = bytearray()
        return events

    def _parse(self, buf: Any, events: List[Event]) -> int:
        """Parse as much of ``buf`` as possible; return how far it got."""
        pos = 0
        end = len(buf)
        limit = self.max_message_size
        want_mask = not self.is_client
        while pos < end and self.close_rcvd is None:
            if not self._in_frame:
                if not self._m_opcode and end - pos >= 2:
                    b0 = buf[pos]
                    if b0 == 0x81 or b0 == 0x82:
                        stop = self._whole_frame(buf, pos, end, b0, limit, want_mask, events)
                        if stop:
                            pos = stop
                            continue
                header = parse_header(buf, pos)
                if header is None:
                    break
                fin, rsv1, rsv2, rsv3, opcode, masked, length, size = header
                self._check_header(fin, rsv1, rsv2, rsv3, opcode, masked, length)
                if opcode >= 8:
                    if end - pos - size < length:
                        break  # control frames are handled whole
                    start = pos + size
                    payload = buf[start : start + length]
                    if masked:
                        payload = apply_mask(payload, bytes(buf[start - 4 : start]))
                    pos = start + length
                    self._control(opcode, bytes(payload), events)
                    continue
                pos += size
                self._start_frame(opcode, fin, rsv1, bytes(buf[pos - 4 : pos]) if masked else None, length)
                if length == 0:
                    self._end_frame(b"", events)
                    continue
            take = self._f_left if self._f_left <= end - pos else end - pos
            if take <= 0:
                break
            chunk = buf[pos : pos + take]
            pos += take
            if self._f_key is not None:
                key = self._f_key
                shift = self._f_offset & 3
                if shift:
                    key = key[shift:] + key[:shift]
                chunk = apply_mask(chunk, key)
            self._f_offset += take
            self._f_left -= take
            if self._f_left == 0:
                self._end_frame(chunk, events)
            else:
                self._add_chunk(chunk, False)
        return pos

    def _whole_frame(
        self, buf: Any, pos: int, end: int, b0: int, limit: Optional[int], want_mask: bool, events: List[Event]
    ) -> int:
        """Fast path: a complete, final, uncompressed text or binary frame at ``pos``.

        Returns where the frame ends, or 0 to let the general path handle it.
        """
        b1 = buf[pos + 1]
        if bool(b1 & 0x80) is not want_mask:
            return 0
        length = b1 & 0x7F
        start = pos + 2
        if length == 126:
            if end - pos < 4:
                return 0
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            start = pos + 4
        elif length == 127:
            return 0
        if limit is not None and length > limit:
            return 0
        if want_mask:
            start += 4
        stop = start + length
        if stop > end:
            return 0
        payload = buf[start:stop]
        if want_mask and length:
            payload = apply_mask(payload, bytes(buf[start - 4 : start]))
        if b0 == 0x81:
            try:
                events.append(Message(str(payload, "utf-8")))
            except UnicodeDecodeError:
                raise RemoteProtocolError("invalid UTF-8 in text message", 1007) from None
        else:
            events.append(Message(payload if type(payload) is bytes else bytes(payload)))
        return stop

    def _check_header(
        self, fin: bool, rsv1: bool, rsv2: bool, rsv3: bool, opcode: int, masked: bool, length: int
    ) -> None:
        """Apply RFC 6455 section 5 rules to a frame header."""
        if opcode not in KNOWN_OPCODES:
            raise RemoteProtocolError(f"reserved opcode {opcode}")
        if rsv2 or rsv3:
            raise RemoteProtocolError("RSV2 or RSV3 set without a negotiated extension")
        if rsv1:
            if self.extension is None:
                raise RemoteProtocolError("RSV1 set without a negotiated extension")
            if opcode == 0 or opcode >= 8:
                raise RemoteProtocolError("RSV1 set on a continuation or control frame")
        if masked == self.is_client:
            raise RemoteProtocolError("masked frame from server" if self.is_client else "unmasked frame from client")
        if opcode == 0:
            if not self._m_opcode:
                raise RemoteProtocolError("continuation frame without a message to continue")
        elif opcode < 8:
            if self._m_opcode:
                raise RemoteProtocolError("new data frame before the fragmented message ended")
            if self._debug:
                logger.debug("< frame opcode=%d fin=%s len=%d", opcode, fin, length)
        limit = self.max_message_size
        if limit is not None and opcode < 8 and not (rsv1 or (opcode == 0 and self._m_compressed)):
            if (self._m_size if opcode == 0 else 0) + length > limit:
                raise PayloadTooBig(f"message exceeds {limit} bytes")

    def _start_frame(self, opcode: int, fin: bool, rsv1: bool, key: Optional[bytes], length: int) -> None:
        """Begin receiving a data frame's payload."""
        self._in_frame = True
        self._f_fin = fin
        self._f_key = key
        self._f_left = length
        self._f_offset = 0
        if opcode:
            self._m_opcode = opcode
            self._m_compressed = rsv1
            self._m_size = 0
        if not self._m_compressed:
            self._m_size += length

    def _end_frame(self, chunk: Any, events: List[Event]) -> None:
        """Finish a data frame; emit the message if it was the last fragment."""
        self._in_frame = False
        fin = self._f_fin
        if fin and not self._m_parts and not self._m_compressed and self._m_decoder is None:
            # fast path: a whole message in one frame and one chunk
            self._m_opcode, opcode = 0, self._m_opcode
            data = bytes(chunk)
            if opcode == _TEXT:
                try:
                    events.append(Message(data.decode("utf-8")))
                except UnicodeDecodeError:
                    raise RemoteProtocolError("invalid UTF-8 in text message", 1007) from None
            else:
                events.append(Message(data))
            return
        self._add_chunk(chunk, fin)
        if fin:
            parts, self._m_parts = self._m_parts, []
            opcode, self._m_opcode = self._m_opcode, 0
            self._m_decoder = None
            self._m_compressed = False
            if opcode == _TEXT:
                events.append(Message("".join(parts)))
            else:
                events.append(Message(b"".join(parts)))

    def _add_chunk(self, chunk: Any, final: bool) -> None:
        """Append part of a message's payload: inflate, validate UTF-8, check size."""
        if self._m_compressed:
            limit = self.max_message_size
            left = None if limit is None else limit - self._m_size
            chunk = self.extension.decompress_frame(chunk, fin=final, max_size=left)
            self._m_size += len(chunk)
        if self._m_opcode == _TEXT:
            decoder = self._m_decoder
            if decoder is None:
                decoder = self._m_decoder = _utf8_decoder()
            try:
                text = decoder.decode(chunk, final)
            except UnicodeDecodeError:
                raise RemoteProtocolError("invalid UTF-8 in text message", 1007) from None
            if not final:
                pending = decoder.getstate()[0]
                # CPython waits for the 3rd byte of ED A0..BF; it is a surrogate already: fail fast
                if len(pending) == 2 and pending[0] == 0xED and pending[1] >= 0xA0:
                    raise RemoteProtocolError("invalid UTF-8 in text message (surrogate)", 1007)
            if text:
                self._m_parts.append(text)
        else:
            self._m_parts.append(bytes(chunk))

    def _control(self, opcode: int, payload: bytes, events: List[Event]) -> None:
        """Handle a complete control frame."""
        if self._debug:
            logger.debug("< control opcode=%d len=%d", opcode, len(payload))
        if opcode == _PING:
            if self.close_sent is None:
                self._pending.extend(self._frame(_PONG, payload))
            events.append(Ping(payload))
        elif opcode == _PONG:
            events.append(Pong(payload))
        else:
            code, reason = parse_close(payload)
            self.close_rcvd = Close(code, reason)
            if self.close_sent is None:
                reply_code = None if code == 1005 else code
                self._send_close(reply_code, reason if reply_code is not None else "")
            self.state = State.CLOSED
            events.append(self.close_rcvd)

    def _fail(self, exc: RemoteProtocolError, defer: bool = True) -> None:
        """Fail the connection (RFC 6455 7.1.7): send a close frame, ignore the rest."""
        self.failure = exc
        if self._debug:
            logger.debug("protocol failure %d: %s", exc.code, exc)
        if defer and self.defer_failure_close and self.close_sent is None and self.state is State.OPEN:
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
        if self.close_sent is None and self.state is State.OPEN:
            self._send_close(exc.code, _truncate_reason(str(exc)))
        self.state = State.CLOSING if self.state is State.OPEN else self.state

    def fail(self, code: int, reason: str) -> None:
        """Fail the connection from our side (e.g. keepalive timeout) with ``code``."""
        if self.failure is None and self.state is not State.CLOSED:
            self._fail(RemoteProtocolError(reason, code), defer=False)

    def _eof(self) -> None:
        """The transport reached end of stream."""
        self.state = State.CLOSED
        self.failure_deferred = False
        self._pending.clear()

    # --- sending --------------------------------------------------------------------

    def data_to_send(self) -> List[Any]:
        """Buffers queued by the protocol itself (pongs, close replies), oldest first."""
        out, self._pending = self._pending, []
        return out

    @property
    def has_pending(self) -> bool:
        """Whether :meth:`data_to_send` has anything."""
        return bool(self._pending)

    def _check_open(self) -> None:
        """Raise :class:`ConnectionClosed` unless data may still be sent."""
        if self.state is not State.OPEN:
            raise self.closed_exception()

    def send_message(self, data: Data, *, text: Optional[bool] = None) -> List[Any]:
        """Encode a whole message (fragmented above ``frame_size``) into buffers.

        ``str`` becomes a text message and bytes-like a binary one unless
        ``text`` says otherwise (``text=True`` needs valid UTF-8 bytes).
        """
        if self.state is not State.OPEN:
            raise self.closed_exception()
        if type(data) is str and text is None and self.extension is None:
            try:
                payload: Any = data.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None
            if len(payload) < 126 and (self.frame_size is None or len(payload) <= self.frame_size):
                return [self._small_frame(0x81, payload)]
            opcode = _TEXT
        elif isinstance(data, str):
            try:
                payload = data.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise LocalProtocolError(f"text is not encodable as UTF-8: {exc}") from None
            opcode = _BINARY if text is False else _TEXT
        elif isinstance(data, (bytes, bytearray, memoryview)):
            payload = data
            if isinstance(data, memoryview) and data.nbytes != len(data):
                payload = data.cast("B")  # len() counts items, frame lengths count bytes
            if text:
                try:
                    codecs.decode(payload, "utf-8")
                except UnicodeDecodeError:
                    raise LocalProtocolError("text=True needs valid UTF-8") from None
            opcode = _TEXT if text else _BINARY
        else:
            raise TypeError(f"data must be str or bytes-like, not {type(data).__name__}")
        return self._encode_payload(opcode, payload)

    def _small_frame(self, b0: int, payload: bytes) -> bytes:
        """Encode a final frame with a payload under 126 bytes in one buffer."""
        n = len(payload)
        if self.is_client:
            key = self._mask_key()
            return bytes((b0, 0x80 | n)) + key + (apply_mask(payload, key) if n else b"")
        return bytes((b0, n)) + payload

    def _mask_key(self) -> bytes:
        """A fresh masking key from a pool refilled from ``os.urandom`` (one syscall per 256 keys)."""
        pos = self._key_pos
        if pos >= len(self._keys):
            self._keys = os.urandom(1024)
            pos = 0
        self._key_pos = pos + 4
        return self._keys[pos : pos + 4]

    def _encode_payload(self, opcode: int, payload: Any) -> List[Any]:
        """Compress (if negotiated), fragment and frame an encoded message payload."""
        rsv1 = False
        ext = self.extension
        if ext is not None and len(payload) >= ext.threshold:
            payload = ext.compress_message(payload)
            rsv1 = True
        if self._debug:
            logger.debug("> message opcode=%d len=%d", opcode, len(payload))
        size = self.frame_size
        if size is None or len(payload) <= size:
            return self._frame(opcode, payload, True, rsv1)
        view = memoryview(payload).cast("B") if not isinstance(payload, bytes) else memoryview(payload)
        out: List[Any] = []
        total = len(view)
        for start in range(0, total, size):
            stop = start + size
            out.extend(self._frame(opcode if start == 0 else 0, view[start:stop], stop >= total, rsv1 and start == 0))
        return out

    def send_ping(self, data: Union[str, bytes] = b"") -> List[Any]:
        """Encode a ping (at most 125 bytes)."""
        return self._control_out(_PING, data)

    def send_pong(self, data: Union[str, bytes] = b"") -> List[Any]:
        """Encode an unsolicited pong (at most 125 bytes)."""
        return self._control_out(_PONG, data)

    def _control_out(self, opcode: int, data: Union[str, bytes]) -> List[Any]:
        """Encode a ping or pong after checking its size."""
        self._check_open()
        payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        if len(payload) > 125:
            raise LocalProtocolError("control frame payload longer than 125 bytes")
        return self._frame(opcode, payload)

    def send_close(self, code: Optional[int] = 1000, reason: str = "") -> List[Any]:
        """Start the close handshake; nothing is encoded if a close was already sent."""
        if self.failure_deferred:  # the peer's violation decides the code
            self.release_failure()
            return self.data_to_send()
        if self.close_sent is not None or self.state is State.CLOSED:
            return []
        payload = encode_close(code, reason)  # validates before changing state
        self._send_close_payload(code, reason, payload)
        return self.data_to_send()

    def _send_close(self, code: Optional[int], reason: str) -> None:
        """Queue our close frame in the pending output."""
        self._send_close_payload(code, reason, encode_close(code, reason))

    def _send_close_payload(self, code: Optional[int], reason: str, payload: bytes) -> None:
        self.close_sent = Close(1005 if code is None else code, reason)
        if self.state is State.OPEN:
            self.state = State.CLOSING
        self._pending.extend(self._frame(_CLOSE, payload))

    def _frame(self, opcode: int, payload: Any, fin: bool = True, rsv1: bool = False) -> List[Any]:
        """Encode one frame, masked with a fresh key when we are the client."""
        length = len(payload)
        if self.is_client:
            key = self._mask_key()
            header = encode_header(opcode, length, fin=fin, rsv1=rsv1, mask_key=key)
            body: Any = apply_mask(payload, key) if length else b""
        else:
            header = encode_header(opcode, length, fin=fin, rsv1=rsv1)
            body = payload
        if length <= 2048:
            return [header + body] if isinstance(body, bytes) else [header + bytes(body)]
        return [header, body]

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
