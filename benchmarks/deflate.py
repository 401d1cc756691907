"""permessage-deflate for the fixed peer and the raw baseline, and the JSON corpus.

The ``deflate-json`` and ``idle-deflate`` rows send realistic JSON messages
of 1-4 KiB (:func:`corpus`, deterministic from :data:`SEED`, the same in
every process).  The fixed peer speaks RFC 7692 with Python's ``zlib``: raw
deflate (``wbits`` -15, or what was negotiated), context takeover unless
negotiated away, each message flushed with ``Z_SYNC_FLUSH`` and its
``00 00 ff ff`` tail stripped (appended again before inflating).  Its
outgoing messages are compressed once, before the timed part: a cycle of
:data:`CYCLE` messages compressed from an empty window is valid to replay
from its start on a context-takeover connection (no back-reference reaches
before the cycle), so every request is answered from the pre-built frames.

The raw baseline (:class:`RawDeflate`) is ``benchmarks.raw`` with the same
zlib per message: a message of at least :data:`THRESHOLD` bytes goes out
compressed as a binary raw message (the raw framing has no RSV1 bit), a
shorter one as plain text, like simplews's default threshold.
"""

from __future__ import annotations

import json
import random
import socket
import weakref
import zlib
from typing import Any, Callable, Dict, List, Optional, Tuple

from benchmarks.codec import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    apply_mask,
    header_values,
    ws_server_upgrade,
)

SEED = 7692
CYCLE = 256
THRESHOLD = 64
TAIL = b"\x00\x00\xff\xff"
STREAM_BATCH = 64
_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet",
          "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo", "sierra", "tango")


# --------------------------------------------------------------------------
# The corpus
# --------------------------------------------------------------------------

def _event(rng: random.Random, n: int) -> Dict[str, Any]:
    """One order-like event with a varying number of line items."""
    return {
        "id": n, "type": rng.choice(("order.created", "order.updated", "cart.changed", "price.tick")),
        "ts": 1_764_633_600_000 + n * 37 + rng.randrange(1000),
        "user": {"id": rng.randrange(10 ** 6), "name": f"{rng.choice(_WORDS)}.{rng.choice(_WORDS)}",
                 "tier": rng.choice(("free", "pro", "team"))},
        "items": [], "tags": rng.sample(_WORDS, rng.randrange(1, 6)),
    }


def _item(rng: random.Random) -> Dict[str, Any]:
    return {"sku": f"SKU-{rng.randrange(10 ** 5):05d}", "name": " ".join(rng.sample(_WORDS, 3)),
            "qty": rng.randrange(1, 9), "price": round(rng.uniform(0.5, 500), 2),
            "warehouse": rng.choice(("ams", "fra", "lhr", "iad"))}


def corpus(count: int = CYCLE, seed: int = SEED) -> List[str]:
    """``count`` JSON texts of 1-4 KiB each (target size uniform), the same for a given seed."""
    rng = random.Random(seed)
    texts = []
    for n in range(count):
        target = rng.randrange(1024, 4096)
        event = _event(rng, n)
        text = json.dumps(event, separators=(",", ":"))
        while len(text) < target:
            event["items"].append(_item(rng))
            text = json.dumps(event, separators=(",", ":"))
        while len(text) > 4096:
            event["items"].pop()
            text = json.dumps(event, separators=(",", ":"))
        texts.append(text)
    return texts


# --------------------------------------------------------------------------
# zlib per message (RFC 7692)
# --------------------------------------------------------------------------

class Deflater:
    """Compresses whole messages; ``reset`` = no context takeover (a full flush)."""

    def __init__(self, wbits: int = 15, reset: bool = False) -> None:
        self.key = (wbits, reset)
        self._obj = zlib.compressobj(6, zlib.DEFLATED, -wbits)
        self._mode = zlib.Z_FULL_FLUSH if reset else zlib.Z_SYNC_FLUSH

    def compress(self, data: bytes) -> bytes:
        """The compressed message, without the 00 00 ff ff tail."""
        out = self._obj.compress(data) + self._obj.flush(self._mode)
        if not out.endswith(TAIL):
            raise AssertionError("zlib flush did not end in 00 00 ff ff")
        return out[:-4]


class Inflater:
    """Inflates whole messages of one direction of a connection (context kept)."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(-15)

    def inflate(self, data: bytes) -> bytes:
        """The message ``data`` (tail stripped) was compressed from."""
        return self._obj.decompress(data + TAIL)


# --------------------------------------------------------------------------
# Negotiation (the fixed peer's side of it)
# --------------------------------------------------------------------------

CLIENT_OFFER = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"


def _offers(head: bytes) -> List[Dict[str, Optional[str]]]:
    """The permessage-deflate entries of the Sec-WebSocket-Extensions lines, as {param: value}."""
    found = []
    for line in header_values(head, b"sec-websocket-extensions"):
        for entry in line.decode("latin-1").split(","):
            name, *params = [p.strip() for p in entry.split(";")]
            if name == "permessage-deflate":
                pairs = (p.partition("=") for p in params if p)
                found.append({k.strip(): (v.strip().strip('"') or None) for k, _, v in pairs})
    return found


def _bits(value: Optional[str]) -> int:
    bits = int(value) if value else 15
    if not 9 <= bits <= 15:
        raise ConnectionError(f"window bits {bits} cannot be used with zlib")
    return bits


def client_deflater(head: bytes) -> Deflater:
    """The fixed client's compressor for what the server's 101 ``head`` agreed (error if nothing)."""
    agreed = _offers(head)
    if not agreed:
        raise ConnectionError("the server did not accept permessage-deflate")
    params = agreed[0]
    return Deflater(_bits(params.get("client_max_window_bits")), "client_no_context_takeover" in params)


def server_answer(head: bytes, negotiated: List[Deflater]) -> bytes:
    """The fixed server's Sec-WebSocket-Extensions line for the client's offer in ``head``
    (its first permessage-deflate offer, accepted as it is); the compressor goes to ``negotiated``."""
    offers = _offers(head)
    if not offers:
        raise ConnectionError("the client did not offer permessage-deflate")
    offer, params = offers[0], ["permessage-deflate"]
    reset = "server_no_context_takeover" in offer
    if reset:
        params.append("server_no_context_takeover")
    bits = offer.get("server_max_window_bits")
    if bits:
        params.append(f"server_max_window_bits={_bits(bits)}")
    negotiated.append(Deflater(_bits(bits), reset))
    return b"Sec-WebSocket-Extensions: %s\r\n" % "; ".join(params).encode()


# --------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------

def compressed_frame(codec: Any, data: bytes, masked: bool) -> bytes:
    """One message of already compressed ``data``: RSV1 set (WebSocket) or a binary raw message."""
    if codec.name == "raw":
        return codec.frame(data, False, masked)
    frame = bytearray(codec.frame(data, True, masked))
    frame[0] |= 0x40
    return bytes(frame)


class MessageReader:
    """Whole messages from a byte stream, inflated when compressed.

    ``feed(data)`` returns ``(opcode, payload)`` for every message or control
    frame ``data`` completes; a compressed message comes out inflated, as
    text.  Unlike :class:`benchmarks.codec.Scanner` it reads every payload:
    the rows using it check what they receive.
    """

    def __init__(self, codec: Any) -> None:
        self.codec = codec
        self.inflater = Inflater()
        self._raw = codec.name == "raw"
        self._pending = b""
        self._parts: List[bytes] = []
        self._opcode = OP_TEXT
        self._compressed = False

    def feed(self, data: bytes) -> List[Tuple[int, bytes]]:
        """Consume ``data``; return the messages it completes."""
        buf = self._pending + data if self._pending else data
        view, pos, end = memoryview(buf), 0, len(buf)
        out: List[Tuple[int, bytes]] = []
        while True:
            header = self.codec.parse_header(view, pos, end)
            if header is None or end - pos - header[0] < header[1]:
                break
            hlen, length, opcode, fin, mask = header
            payload = bytes(view[pos + hlen:pos + hlen + length])
            if mask is not None:
                payload = apply_mask(payload, mask)
            if opcode >= OP_CLOSE:
                out.append((opcode, payload))
            else:
                if opcode != OP_CONT:
                    self._opcode = opcode
                    self._compressed = (opcode == OP_BINARY) if self._raw else bool(view[pos] & 0x40)
                self._parts.append(payload)
                if fin:
                    out.append(self._complete())
            pos += hlen + length
        self._pending = bytes(view[pos:])
        return out

    def _complete(self) -> Tuple[int, bytes]:
        data = b"".join(self._parts)
        self._parts = []
        if self._compressed:
            return OP_TEXT if self._raw else self._opcode, self.inflater.inflate(data)
        return self._opcode, data


# --------------------------------------------------------------------------
# The fixed server's side of deflate-json (client-role rows)
# --------------------------------------------------------------------------

class PrebuiltStream:
    """The corpus compressed once as a cycle of frames; ``frames(n)`` = the first n, cycling."""

    def __init__(self, codec: Any, deflater: Deflater, texts: List[str]) -> None:
        frames = [compressed_frame(codec, deflater.compress(t.encode()), False) for t in texts]
        self.cycle = b"".join(frames)
        self.offsets = [0]
        for frame in frames:
            self.offsets.append(self.offsets[-1] + len(frame))

    def send(self, sock: socket.socket, n: int) -> None:
        """Send the first ``n`` messages of the endless cycle, a cycle per ``sendall``."""
        full, rest = divmod(n, len(self.offsets) - 1)
        for _ in range(full):
            sock.sendall(self.cycle)
        if rest:
            sock.sendall(self.cycle[:self.offsets[rest]])


def serve_deflate(sock: socket.socket, codec: Any, recv_buffer: bytearray) -> None:
    """One client-role connection: a text message ``N`` asks for the first N corpus messages, compressed."""
    negotiated: List[Deflater] = []
    if codec.name == "raw":
        negotiated.append(Deflater())
        pending = b""
    else:
        pending = codec_server_upgrade(sock, negotiated)
    stream = PrebuiltStream(codec, negotiated[0], corpus())
    reader = MessageReader(codec)
    events = reader.feed(pending) if pending else []
    while True:
        for opcode, payload in events:
            if opcode == OP_CLOSE:
                sock.sendall(codec.close_frame(masked=False))
                return
            if opcode == OP_PING:
                sock.sendall(codec.frame(payload, False, False, opcode=OP_PONG))
            elif opcode == OP_TEXT:
                stream.send(sock, int(payload or b"0"))
        n = sock.recv_into(recv_buffer)
        if not n:
            return
        events = reader.feed(bytes(recv_buffer[:n]))


def codec_server_upgrade(sock: socket.socket, negotiated: List[Deflater]) -> bytes:
    """The fixed server's WebSocket handshake with permessage-deflate; the leftover bytes."""
    return ws_server_upgrade(sock, lambda head: server_answer(head, negotiated))[1]


# --------------------------------------------------------------------------
# The raw TCP baseline with zlib
# --------------------------------------------------------------------------

class RawDeflate:
    """One raw connection's zlib state: ``send`` compresses, ``decode`` inflates."""

    def __init__(self, send_text: Callable[[str], object], send_binary: Callable[[bytes], object]) -> None:
        self._send_text, self._send_binary = send_text, send_binary
        self.deflater = Deflater()
        self.inflater = Inflater()

    def send(self, message: Any) -> None:
        """Send a text message: compressed (binary) from THRESHOLD bytes on."""
        if len(message) < THRESHOLD:
            self._send_text(message)
        else:
            self._send_binary(self.deflater.compress(message.encode()))

    def decode(self, message: Any) -> Any:
        """A received raw message as the text it carries."""
        return self.inflater.inflate(message).decode() if isinstance(message, bytes) else message


def raw_deflate_handler(on_message: Callable[[Callable[[Any], None], Any], None]) -> Callable[[Any, Any], None]:
    """Wrap a raw server's ``on_message(send, message)`` with per-connection zlib state
    (kept beside the connection, found through the bound ``send``)."""
    states: weakref.WeakKeyDictionary[Any, RawDeflate] = weakref.WeakKeyDictionary()

    def handler(send: Any, message: Any) -> None:
        conn = send.__self__
        state = states.get(conn)
        if state is None:
            state = states[conn] = RawDeflate(conn.send_text, conn.send_binary)
        on_message(state.send, state.decode(message))
    return handler

