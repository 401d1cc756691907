"""permessage-deflate conformance over raw sockets, modelled on Autobahn sections 12
(messages of many sizes, compressed and fragmented) and 13 (each negotiation offer),
plus the safety cases: decompression bombs (1009), invalid deflate data (1007) and
misplaced RSV1 (1002), in both roles. The peer here is hand-written: zlib directly,
frames built byte by byte."""

from __future__ import annotations

import array
import base64
import random
import socket
import threading
import zlib
from types import ModuleType
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from deflate_wire import TAIL, RawClient, bomb, compressible, parse_frames, raw_deflate

import simplews
from simplews.frames import apply_mask, encode_header
from simplews.handshake import accept_key

TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10
SIZES = [0, 16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072]  # Autobahn 12.1.x payload sizes
SERVER_FRAME_SIZE = 1024


def _params(header: Optional[str]) -> Dict[str, Optional[str]]:
    """Parameters of a single permessage-deflate answer (parsed here, not with our parser)."""
    assert header is not None and header.split(";")[0].strip() == "permessage-deflate", header
    params: Dict[str, Optional[str]] = {}
    for item in header.split(";")[1:]:
        name, _, value = item.strip().partition("=")
        params[name] = value or None
    return params


class DeflatePeer:
    """The raw client's side of the extension, straight on zlib."""

    def __init__(self, answer: Optional[str]) -> None:
        params = _params(answer)
        self.client_bits = int(params.get("client_max_window_bits") or 15)
        self.server_bits = int(params.get("server_max_window_bits") or 15)
        self.client_nct = "client_no_context_takeover" in params
        self.server_nct = "server_no_context_takeover" in params
        self._comp: Any = None
        self._decomp: Any = None

    def compress(self, data: bytes) -> bytes:
        if self._comp is None or self.client_nct:
            self._comp = zlib.compressobj(6, zlib.DEFLATED, -self.client_bits)
        out = self._comp.compress(data) + self._comp.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4]

    def decompress(self, data: bytes) -> bytes:
        if self._decomp is None or self.server_nct:
            self._decomp = zlib.decompressobj(-self.server_bits)
        return self._decomp.decompress(data + TAIL)


def send_message(ws: RawClient, opcode: int, data: bytes, *, peer: Optional[DeflatePeer], fragment: int = 0) -> None:
    """Send one message, compressed when ``peer`` is given, in fragments of ``fragment`` bytes (0: one frame)."""
    payload = peer.compress(data) if peer is not None else data
    step = fragment or max(len(payload), 1)
    chunks = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    for i, chunk in enumerate(chunks):
        ws.send_frame(opcode if i == 0 else 0, chunk, fin=i == len(chunks) - 1, rsv1=peer is not None and i == 0)


def recv_message(ws: RawClient, peer: DeflatePeer) -> Tuple[int, bytes, bool, int]:
    """Read one data message; return (opcode, data, compressed, frames). RSV1 only on the first frame."""
    first, payload = ws.recv_frame()
    assert first.opcode in (TEXT, BINARY), first
    parts, frames = [payload], 1
    info = first
    while not info.fin:
        info, payload = ws.recv_frame()
        assert info.opcode == 0 and not info.rsv1, info
        parts.append(payload)
        frames += 1
    data = b"".join(parts)
    return first.opcode, peer.decompress(data) if first.rsv1 else data, first.rsv1, frames


@pytest.fixture
def echo_server(server_factory: Callable[..., simplews.Server]) -> simplews.Server:
    return server_factory(on_message=lambda ws, m: ws.send(m), frame_size=SERVER_FRAME_SIZE, max_message_size=None)


@pytest.fixture
def raw_clients() -> Iterator[List[RawClient]]:
    """Raw clients opened by a test, closed after it."""
    clients: List[RawClient] = []
    yield clients
    for client in clients:
        client.close()


# --- RFC 7692 section 7.2.3, byte for byte on the wire ------------------------------------

HELLO = bytes.fromhex("f2 48 cd c9 c9 07 00")  # 7.2.3.1
HELLO_AGAIN = bytes.fromhex("f2 00 11 00 00")  # 7.2.3.2, the second message sharing the window
#: what a client may send for "Hello": (frames as (opcode, fin, rsv1, payload), section)
RFC_INPUTS = [
    ([(TEXT, True, True, HELLO)], "7.2.3.1"),
    ([(TEXT, True, True, HELLO_AGAIN)], "7.2.3.2"),
    ([(TEXT, False, True, bytes.fromhex("f2 48 cd")), (0, True, False, bytes.fromhex("c9 c9 07 00"))], "7.2.3.1 fragmented"),
    ([(TEXT, True, True, bytes.fromhex("00 05 00 fa ff 48 65 6c 6c 6f 00"))], "7.2.3.3 no compression"),
    ([(TEXT, True, True, bytes.fromhex("f3 48 cd c9 c9 07 00 00"))], "7.2.3.4 BFINAL"),
    ([(TEXT, True, True, bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00"))], "7.2.3.5 two blocks"),
    ([(TEXT, False, True, HELLO + b"\x00\x00\xff\xff"), (0, True, False, b"\x00")], "7.2.3.6 empty final fragment"),
]


@pytest.mark.parametrize("server_nct", [False, True])
def test_rfc7692_examples_server_role(
    server_factory: Callable[..., simplews.Server], raw_clients: List[RawClient], server_nct: bool
) -> None:
    """The server inflates every example to "Hello"; its first two answers are the RFC's exact
    frames (c1 07 f2 48 cd c9 c9 07 00, then c1 05 f2 00 11 00 00 while the window is shared)."""
    server = server_factory(on_message=lambda ws, m: ws.send(m), compression=simplews.DeflateConfig(threshold=0))
    ws = RawClient(server.port, "permessage-deflate" + ("; server_no_context_takeover" if server_nct else ""))
    raw_clients.append(ws)
    peer = DeflatePeer(ws.extensions)
    first = bytes([0xC1, len(HELLO)]) + HELLO
    again = first if server_nct else bytes([0xC1, len(HELLO_AGAIN)]) + HELLO_AGAIN
    for i, (frames, section) in enumerate(RFC_INPUTS):
        for opcode, fin, rsv1, payload in frames:
            ws.send_frame(opcode, payload, fin=fin, rsv1=rsv1)
        assert recv_message(ws, peer) == (TEXT, b"Hello", True, 1), section
        if i < 2:
            assert ws.last_raw == (first, again)[i], section


def test_rfc7692_examples_client_role() -> None:
    """Our client inflates the RFC's server frames and sends "Hello" twice as 7.2.3.1 and 7.2.3.2."""

    def script(sock: socket.socket) -> None:
        for frames, _ in RFC_INPUTS:
            sock.sendall(b"".join(encode_header(op, len(p), fin=fin, rsv1=rsv1) + p for op, fin, rsv1, p in frames))

    server = RawServer("permessage-deflate", script)
    try:
        with simplews.connect(server.url, compression=simplews.DeflateConfig(threshold=0)) as ws:
            # 7.2.3.2 needs "Hello" in the server's window first: the first example provides it
            assert [ws.recv(timeout=10) for _ in RFC_INPUTS] == ["Hello"] * len(RFC_INPUTS)
            ws.send("Hello")
            ws.send("Hello")
    finally:
        server.close()
    sent = parse_frames(bytes(server.received), after_head=False)
    pos, payloads = 0, []
    for frame in sent[:2]:
        start = pos + frame.header
        payloads.append(apply_mask(bytes(server.received[start : start + frame.length]), bytes(server.received[start - 4 : start])))
        pos += frame.size
        assert (frame.opcode, frame.fin, frame.rsv1) == (TEXT, True, True)
    assert payloads == [HELLO, HELLO_AGAIN]


# --- Autobahn 13: one offer each, and 12: many sizes, echoed -------------------------------

ALL_PARAMETERS = (
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12; client_max_window_bits=11"
)
OFFERS = {
    "13.1-default": ("permessage-deflate", "permessage-deflate"),
    "13.2-server-no-context-takeover": (
        "permessage-deflate; server_no_context_takeover",
        "permessage-deflate; server_no_context_takeover",
    ),
    "13.3-server-bits-9": ("permessage-deflate; server_max_window_bits=9", "permessage-deflate; server_max_window_bits=9"),
    "13.4-server-bits-15": ("permessage-deflate; server_max_window_bits=15", "permessage-deflate; server_max_window_bits=15"),
    "13.5-server-nct-bits-9": (
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
    ),
    "13.7-several-offers": (
        "permessage-deflate; server_max_window_bits=8, permessage-deflate; server_no_context_takeover; server_max_window_bits=10, "
        "permessage-deflate",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
    ),
    "browser": ("permessage-deflate; client_max_window_bits", "permessage-deflate"),
    "client-nct-bits-9": (
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
        "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
    ),
    "all-parameters": (ALL_PARAMETERS, ALL_PARAMETERS),
}


@pytest.mark.parametrize(("offer", "answer"), OFFERS.values(), ids=OFFERS.keys())
def test_autobahn_12_13_echo(echo_server: simplews.Server, raw_clients: List[RawClient], offer: str, answer: str) -> None:
    """Every size, text and binary, compressed or not, whole or fragmented, comes back intact;
    the server's echo is compressed from 64 bytes up and fragmented at its frame size."""
    ws = RawClient(echo_server.port, offer)
    raw_clients.append(ws)
    assert ws.status == 101 and ws.extensions == answer
    peer = DeflatePeer(ws.extensions)
    for i, size in enumerate(SIZES * 2):
        opcode = TEXT if i % 2 else BINARY
        data = compressible(size, seed=i) if i % 3 else random.Random(i).randbytes(size)
        if opcode == TEXT and not i % 3:
            data = base64.b64encode(data)[:size]  # valid UTF-8 that deflates poorly
        fragment = (0, 256, 1000, 4096)[i % 4]
        send_message(ws, opcode, data, peer=peer if i % 5 else None, fragment=fragment)
        got_opcode, got, compressed, frames = recv_message(ws, peer)
        assert (got_opcode, got) == (opcode, data)
        assert compressed == (size >= 64)
        if compressed and len(data) > 4 * SERVER_FRAME_SIZE and i % 3:
            assert frames > 1
    ws.send_frame(CLOSE, (1000).to_bytes(2, "big"))
    assert ws.recv_close_code() == 1000


def test_control_frames_inside_a_fragmented_compressed_message(echo_server: simplews.Server, raw_clients: List[RawClient]) -> None:
    ws = RawClient(echo_server.port, "permessage-deflate; client_max_window_bits")
    raw_clients.append(ws)
    peer = DeflatePeer(ws.extensions)
    data = compressible(20_000)
    payload = peer.compress(data)
    third = len(payload) // 3
    ws.send_frame(BINARY, payload[:third], fin=False, rsv1=True)
    ws.send_frame(PING, b"still there?")
    ws.send_frame(0, payload[third : 2 * third], fin=False)
    ws.send_frame(PONG, b"unsolicited")
    ws.send_frame(0, payload[2 * third :], fin=True)
    pong, body = ws.recv_frame()
    assert (pong.opcode, pong.rsv1, body) == (PONG, False, b"still there?")
    assert recv_message(ws, peer)[1] == data


def test_offers_with_bad_parameters_are_declined(echo_server: simplews.Server, raw_clients: List[RawClient]) -> None:
    """Invalid or duplicate parameters decline that offer only; the next valid one is taken."""
    offers = [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover=yes",
        "permessage-deflate; unknown_parameter",
        "x-unknown-extension; foo",
        "permessage-deflate; client_max_window_bits=12",
    ]
    ws = RawClient(echo_server.port, ", ".join(offers))
    raw_clients.append(ws)
    assert ws.status == 101 and ws.extensions == "permessage-deflate; client_max_window_bits=12"
    ws2 = RawClient(echo_server.port, ", ".join(offers[:-1]))
    raw_clients.append(ws2)
    assert ws2.status == 101 and ws2.extensions is None  # nothing acceptable: connect without it


def test_offers_over_several_header_lines(echo_server: simplews.Server, raw_clients: List[RawClient]) -> None:
    lines = ["x-unknown, permessage-deflate; server_max_window_bits=0", "permessage-deflate; server_max_window_bits=11"]
    ws = RawClient(echo_server.port, lines)
    raw_clients.append(ws)
    assert ws.extensions == "permessage-deflate; server_max_window_bits=11"
    peer = DeflatePeer(ws.extensions)
    send_message(ws, TEXT, compressible(10_000), peer=peer)
    assert recv_message(ws, peer)[1:3] == (compressible(10_000), True)


def test_callback_client_passes_a_config_through(server_factory: Callable[..., simplews.Server]) -> None:
    server = server_factory(on_message=lambda ws, m: ws.send(m))
    config = simplews.DeflateConfig(client_no_context_takeover=True, client_max_window_bits=10, server_max_window_bits=11)
    got: List[Any] = []
    data = compressible(50_000).decode()

    def on_message(ws: simplews.Connection, message: Any) -> None:
        got.append((message, ws.protocol.extension))
        ws.close()

    client = simplews.Client(server.url, on_open=lambda ws: ws.send(data), on_message=on_message, compression=config)
    client.run_forever()
    ((message, extension),) = got
    assert message == data
    assert (extension.local_no_context_takeover, extension.local_max_window_bits, extension.remote_max_window_bits) == (True, 10, 11)


@pytest.mark.parametrize("compression", ["deflate", None])
def test_memoryview_of_wide_items_is_sent_as_its_bytes(server_factory: Callable[..., simplews.Server], compression: Any) -> None:
    """Threshold and frame lengths count bytes, not items (array('i') views, below and above the threshold)."""
    server = server_factory(on_message=lambda ws, m: ws.send(m), compression=compression)
    with simplews.connect(server.url, compression=compression) as ws:
        for items in (3, 10, 5000):
            data = array.array("i", range(items))
            ws.send(memoryview(data))
            assert ws.recv(timeout=10) == data.tobytes()


def test_threshold_and_config_on_the_wire(server_factory: Callable[..., simplews.Server], raw_clients: List[RawClient]) -> None:
    config = simplews.DeflateConfig(server_max_window_bits=10, client_max_window_bits=9, threshold=100, mem_level=4)
    server = server_factory(on_message=lambda ws, m: ws.send(m), compression=config)
    ws = RawClient(server.port, "permessage-deflate; client_max_window_bits")
    raw_clients.append(ws)
    assert ws.extensions == "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"
    peer = DeflatePeer(ws.extensions)
    for size, compressed in ((99, False), (100, True), (5000, True)):
        data = compressible(size)
        send_message(ws, BINARY, data, peer=peer)
        assert recv_message(ws, peer)[1:3] == (data, compressed)


# --- safety: bombs, bad data, misplaced RSV1 (server role) --------------------------------


def _send_in_background(ws: RawClient, data: bytes) -> threading.Thread:
    """Write a large frame while the test reads the server's answer (the server may stop reading)."""

    def send() -> None:
        try:
            ws.sock.sendall(data)
        except OSError:
            pass

    thread = threading.Thread(target=send, name="bomb-sender", daemon=True)
    thread.start()
    return thread


@pytest.mark.timeout(60)
def test_decompression_bomb_closes_1009_without_inflating(
    server_factory: Callable[..., simplews.Server], raw_clients: List[RawClient], tracemalloc: ModuleType
) -> None:
    """~1 MiB on the wire that inflates to 1 GiB: 1009, little memory, other clients unaffected."""
    server = server_factory(on_message=lambda ws, m: ws.send(m))  # default max_message_size: 1 MiB
    bystander = simplews.connect(server.url)
    payload = bomb(1 << 30)
    assert len(payload) < 1100 << 10
    ws = RawClient(server.port, "permessage-deflate")
    raw_clients.append(ws)
    key = b"\x01\x02\x03\x04"
    frame = encode_header(BINARY, len(payload), fin=True, rsv1=True, mask_key=key) + apply_mask(payload, key)
    tracemalloc.start()
    try:
        sender = _send_in_background(ws, frame)
        code = ws.recv_close_code()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    sender.join(30)
    assert code == 1009
    assert peak < 24 << 20  # the frame itself and a few read buffers, nowhere near 1 GiB
    with bystander:
        bystander.send("still fine")
        assert bystander.recv(timeout=10) == "still fine"
    with simplews.connect(server.url) as fresh:
        fresh.send(compressible(100_000))
        assert fresh.recv(timeout=10) == compressible(100_000)


def test_bomb_in_many_small_frames(server_factory: Callable[..., simplews.Server], raw_clients: List[RawClient]) -> None:
    """A fragmented message whose 1 KiB frames each inflate to 1 MiB stops at the limit."""
    server = server_factory(max_message_size=4 << 20)
    ws = RawClient(server.port, "permessage-deflate")
    raw_clients.append(ws)
    chunk = bomb(1 << 20)
    assert len(chunk) < 1100
    for i in range(64):  # 64 MiB if it were all inflated; the server stops after the fifth frame
        try:
            ws.send_frame(BINARY if i == 0 else 0, chunk, fin=False, rsv1=i == 0)
        except OSError:
            break
    assert ws.recv_close_code() == 1009


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(BINARY, b"\xff\xff\xff\xff", True, True)], 1007),  # reserved deflate block type
        ([(TEXT, zlib.compress(b"x")[2:-4] + b"\x00garbage", True, True)], 1007),  # data after the final block
        ([(TEXT, raw_deflate(b"\xff\xfe not utf-8"), True, True)], 1007),  # inflates to invalid UTF-8
        ([(BINARY, raw_deflate(b"abc"), False, True), (0, b"\x00", True, True)], 1002),  # RSV1 on a continuation
        ([(PING, b"hi", True, True)], 1002),  # RSV1 on a control frame
        ([(BINARY, b"abc", True, False), (PING, b"\x00", True, True)], 1002),
    ],
    ids=["bad-block-type", "after-final-block", "bad-utf8", "rsv1-continuation", "rsv1-ping", "rsv1-ping-after-message"],
)
def test_invalid_compressed_input(
    echo_server: simplews.Server, raw_clients: List[RawClient], frames: List[Tuple[int, bytes, bool, bool]], code: int
) -> None:
    ws = RawClient(echo_server.port, "permessage-deflate")
    raw_clients.append(ws)
    for opcode, payload, fin, rsv1 in frames:
        ws.send_frame(opcode, payload, fin=fin, rsv1=rsv1)
    assert ws.recv_close_code() == code


def test_rsv1_without_negotiation_is_1002(server_factory: Callable[..., simplews.Server], raw_clients: List[RawClient]) -> None:
    server = server_factory(compression=None)
    ws = RawClient(server.port, "permessage-deflate")
    raw_clients.append(ws)
    assert ws.extensions is None
    ws.send_frame(BINARY, raw_deflate(b"hello"), rsv1=True)
    assert ws.recv_close_code() == 1002


# --- client role: a hand-written server ----------------------------------------------------


class RawServer:
    """Accept one client, answer the upgrade with ``extensions``, then run ``script(sock)``."""

    def __init__(self, extensions: Optional[str], script: Callable[[socket.socket], None] = lambda sock: None) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(10)
        self.extensions = extensions
        self.script = script
        self.request = b""
        self.received = bytearray()
        self.thread = threading.Thread(target=self._run, name="raw-server", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.listener.getsockname()[1]}/"

    def _run(self) -> None:
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            sock.settimeout(10)
            while b"\r\n\r\n" not in self.request:
                self.request += sock.recv(4096)
            key = [
                line.split(b":", 1)[1].strip() for line in self.request.split(b"\r\n") if line.lower().startswith(b"sec-websocket-key")
            ][0]
            lines = [
                "HTTP/1.1 101 Switching Protocols",
                "Upgrade: websocket",
                "Connection: Upgrade",
                f"Sec-WebSocket-Accept: {accept_key(key.decode())}",
            ]
            if self.extensions is not None:
                lines.append(f"Sec-WebSocket-Extensions: {self.extensions}")
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            try:
                self.script(sock)
                while True:  # read until the client's close frame, answer it, and end
                    data = sock.recv(65536)
                    if not data:
                        break
                    self.received += data
                    frames = parse_frames(bytes(self.received), after_head=False)
                    if frames and frames[-1].opcode == CLOSE and len(self.received) == sum(f.size for f in frames):
                        masked = self.received[-frames[-1].length :]
                        code = apply_mask(bytes(masked), bytes(self.received[-frames[-1].length - 4 : -frames[-1].length]))
                        sock.sendall(encode_header(CLOSE, len(code)) + code)
                        break
            except OSError:
                pass

    def close(self) -> None:
        self.listener.close()
        self.thread.join(15)


@pytest.mark.parametrize(
    "answer",
    [
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_max_window_bits",  # a value is required in a response
        "permessage-deflate; client_max_window_bits=8",
        "permessage-deflate; mystery=1",
        "permessage-deflate, permessage-deflate",
        "x-webkit-deflate-frame",
    ],
)
def test_client_fails_on_a_bad_answer(answer: str) -> None:
    server = RawServer(answer)
    try:
        with pytest.raises(simplews.NegotiationError):
            simplews.connect(server.url, open_timeout=10)
    finally:
        server.close()
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits" in server.request


def test_client_without_compression_rejects_an_unoffered_extension() -> None:
    server = RawServer("permessage-deflate")
    try:
        with pytest.raises(simplews.NegotiationError):
            simplews.connect(server.url, compression=None, open_timeout=10)
    finally:
        server.close()
    assert b"Sec-WebSocket-Extensions" not in server.request


def test_client_bomb_closes_1009() -> None:
    """A server's compressed message that inflates past the client's max_message_size."""
    payload = bomb(256 << 20)

    def script(sock: socket.socket) -> None:
        sock.sendall(encode_header(BINARY, len(payload), fin=True, rsv1=True) + payload)

    server = RawServer("permessage-deflate", script)
    try:
        ws = simplews.connect(server.url, max_message_size=1 << 20, open_timeout=10, close_timeout=5)
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=20)
        ws.close()
    finally:
        server.close()
    assert info.value.sent_code == 1009 and ws.close_code == 1009
    assert [frame.opcode for frame in parse_frames(bytes(server.received), after_head=False)] == [CLOSE]


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        ([(BINARY, b"\xff\xff\xff\xff", True, True)], 1007),
        ([(TEXT, raw_deflate(b"\xc3\x28 not utf-8"), True, True)], 1007),
        ([(BINARY, raw_deflate(b"abc"), False, True), (0, b"\x00", True, True)], 1002),
        ([(PONG, b"", True, True)], 1002),
    ],
    ids=["bad-block-type", "bad-utf8", "rsv1-continuation", "rsv1-pong"],
)
def test_client_fails_on_bad_compressed_input(frames: List[Tuple[int, bytes, bool, bool]], code: int) -> None:
    def script(sock: socket.socket) -> None:
        sock.sendall(b"".join(encode_header(op, len(p), fin=fin, rsv1=rsv1) + p for op, p, fin, rsv1 in frames))

    server = RawServer("permessage-deflate", script)
    try:
        ws = simplews.connect(server.url, open_timeout=10, close_timeout=5)
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=10)
        ws.close()
    finally:
        server.close()
    assert info.value.sent_code == code


def test_client_inflates_fragmented_compressed_messages_and_compresses_its_own() -> None:
    """Our client against a scripted server: a fragmented compressed message in, a compressed echo out."""
    data = compressible(30_000)
    payload = raw_deflate(data)
    frames = [payload[i : i + 1000] for i in range(0, len(payload), 1000)]

    def script(sock: socket.socket) -> None:
        for i, chunk in enumerate(frames):
            sock.sendall(encode_header(TEXT if i == 0 else 0, len(chunk), fin=i == len(frames) - 1, rsv1=i == 0) + chunk)

    server = RawServer("permessage-deflate; server_no_context_takeover", script)
    try:
        with simplews.connect(server.url, open_timeout=10, frame_size=2048) as ws:
            assert ws.recv(timeout=10) == data.decode()
            ws.send(data)
    finally:
        server.close()
    sent = parse_frames(bytes(server.received), after_head=False)
    assert sent[0].opcode == BINARY and sent[0].rsv1 and not sent[0].fin
    assert all(f.opcode == 0 and not f.rsv1 for f in sent[1:-1])
    assert sum(f.length for f in sent if f.opcode in (0, BINARY)) < len(data) // 2


def test_early_validation_of_compression_settings() -> None:
    """Bad settings fail at construction, before any socket is opened."""
    with pytest.raises(ValueError, match="gzip"):
        simplews.Server(compression="gzip", port=0)
    with pytest.raises(TypeError):
        simplews.Server(compression=True, port=0)
    with pytest.raises(ValueError, match="server_max_window_bits"):
        simplews.Server(compression=simplews.DeflateConfig(server_max_window_bits=8), port=0)
    with pytest.raises(ValueError, match="client_max_window_bits"):
        simplews.connect("ws://127.0.0.1:9/", compression=simplews.DeflateConfig(client_max_window_bits=8))
    with pytest.raises(ValueError, match="client_max_window_bits"):
        simplews.Client("ws://127.0.0.1:9/", compression=simplews.DeflateConfig(client_max_window_bits=8))
    with pytest.raises(ValueError, match="mem_level"):
        simplews.DeflateConfig(mem_level=10)
    config = simplews.DeflateConfig()
    config.server_max_window_bits = 99  # mutated after construction: checked again
    with pytest.raises(ValueError, match="server_max_window_bits"):
        simplews.Server(compression=config, port=0)
