"""Tests for simplews.deflate: permessage-deflate (RFC 7692), no sockets."""

from __future__ import annotations

import os
import zlib
from types import ModuleType
from typing import Any, Dict, List, Optional, Tuple

import pytest

from simplews.deflate import (
    DeflateConfig,
    PerMessageDeflate,
    build_extension,
    client_accept,
    client_offer,
    parse_extension_header,
    server_accept,
)
from simplews.exceptions import NegotiationError, RemoteProtocolError
from simplews.frames import encode_frame
from simplews.protocol import Protocol

HELLO = bytes.fromhex("f2 48 cd c9 c9 07 00")  # RFC 7692 7.2.3.1
HELLO_AGAIN = bytes.fromhex("f2 00 11 00 00")  # RFC 7692 7.2.3.2, second message
TEXT = b"".join(b"sensor %d reading %d.%d C; " % (i % 7, 20 + i % 5, i % 10) for i in range(400))
NOISE = os.urandom(50_000)
TEXT_OP, CONT_OP = 0x1, 0x0


def make(
    *,
    is_client: bool = True,
    local_nct: bool = False,
    remote_nct: bool = False,
    local_bits: int = 15,
    remote_bits: int = 15,
    level: int = 6,
) -> PerMessageDeflate:
    """A PerMessageDeflate with short keyword names."""
    return PerMessageDeflate(
        is_client=is_client,
        local_no_context_takeover=local_nct,
        remote_no_context_takeover=remote_nct,
        local_max_window_bits=local_bits,
        remote_max_window_bits=remote_bits,
        compress_level=level,
    )


def pair(
    client_nct: bool = False, server_nct: bool = False, client_bits: int = 15, server_bits: int = 15
) -> Tuple[PerMessageDeflate, PerMessageDeflate]:
    """Matching client and server states, as if negotiated."""
    client = make(is_client=True, local_nct=client_nct, remote_nct=server_nct, local_bits=client_bits, remote_bits=server_bits)
    server = make(is_client=False, local_nct=server_nct, remote_nct=client_nct, local_bits=server_bits, remote_bits=client_bits)
    return client, server


def inflate(state: PerMessageDeflate, payload: bytes, *, frames: int = 1, max_size: Optional[int] = None) -> bytes:
    """Decompress one message split into ``frames`` pieces, passing the remaining budget like protocol.py."""
    step = max(1, -(-len(payload) // frames))
    pieces = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    out = []
    used = 0
    for index, piece in enumerate(pieces):
        left = None if max_size is None else max_size - used
        chunk = state.decompress_frame(piece, fin=index == len(pieces) - 1, max_size=left)
        used += len(chunk)
        out.append(chunk)
    return b"".join(out)


# RFC 7692 section 7.2.3: examples, byte for byte


def test_7_2_3_1_compress_hello() -> None:
    assert make().compress_message(b"Hello") == HELLO


def test_7_2_3_1_decompress_one_frame() -> None:
    assert make().decompress_frame(HELLO, fin=True, max_size=None) == b"Hello"


def test_7_2_3_1_decompress_fragmented() -> None:
    # frames "0x41 0x03 0xf2 0x48 0xcd" and "0x80 0x04 0xc9 0xc9 0x07 0x00"
    state = make()
    first = state.decompress_frame(bytes.fromhex("f2 48 cd"), fin=False, max_size=None)
    second = state.decompress_frame(bytes.fromhex("c9 c9 07 00"), fin=True, max_size=None)
    assert first + second == b"Hello"


def test_7_2_3_2_compress_shares_window() -> None:
    state = make()
    assert state.compress_message(b"Hello") == HELLO
    assert state.compress_message(b"Hello") == HELLO_AGAIN


def test_7_2_3_2_decompress_shares_window() -> None:
    state = make()
    assert state.decompress_frame(HELLO, fin=True, max_size=None) == b"Hello"
    assert state.decompress_frame(HELLO_AGAIN, fin=True, max_size=None) == b"Hello"


def test_local_no_context_takeover_resets_compressor() -> None:
    state = make(local_nct=True)
    assert state.compress_message(b"Hello") == HELLO
    assert state.compress_message(b"Hello") == HELLO


def test_remote_no_context_takeover_resets_inflater() -> None:
    state = make(remote_nct=True)
    assert state.decompress_frame(HELLO, fin=True, max_size=None) == b"Hello"
    with pytest.raises(RemoteProtocolError) as info:  # refers to the previous message's window
        state.decompress_frame(HELLO_AGAIN, fin=True, max_size=None)
    assert info.value.code == 1007


def test_7_2_3_3_no_compression_block() -> None:
    stored = bytes.fromhex("00 05 00 fa ff 48 65 6c 6c 6f 00")
    assert make(level=0).compress_message(b"Hello") == stored
    assert make().decompress_frame(stored, fin=True, max_size=None) == b"Hello"


def test_7_2_3_4_bfinal_block() -> None:
    state = make()
    assert state.decompress_frame(bytes.fromhex("f3 48 cd c9 c9 07 00 00"), fin=True, max_size=None) == b"Hello"
    # the peer ended its deflate stream; the next message starts a new one
    assert state.decompress_frame(HELLO, fin=True, max_size=None) == b"Hello"


def test_7_2_3_5_two_deflate_blocks() -> None:
    payload = bytes.fromhex("f2 48 05 00 00 00 ff ff ca c9 c9 07 00")
    assert make().decompress_frame(payload, fin=True, max_size=None) == b"Hello"


def test_7_2_3_6_empty_fragment() -> None:
    assert make().compress_message(b"") == b"\x00"
    state = make()
    assert state.decompress_frame(b"\x00", fin=True, max_size=0) == b""
    # a sync-flushed fragment followed by the empty final fragment 0x00
    first = state.decompress_frame(HELLO + b"\x00\x00\xff\xff", fin=False, max_size=None)
    assert first + state.decompress_frame(b"\x00", fin=True, max_size=None) == b"Hello"


# round trips


@pytest.mark.parametrize("client_nct", [False, True])
@pytest.mark.parametrize("server_nct", [False, True])
@pytest.mark.parametrize("frames", [1, 3])
def test_round_trip_both_roles(client_nct: bool, server_nct: bool, frames: int) -> None:
    client, server = pair(client_nct, server_nct)
    messages = [b"", b"x", TEXT, TEXT, NOISE, TEXT[:100], TEXT[:100]]
    for message in messages:
        assert inflate(server, client.compress_message(message), frames=frames) == message
        assert inflate(client, server.compress_message(message), frames=frames) == message


@pytest.mark.parametrize(("nct", "shrinks"), [(False, True), (True, False)])
def test_context_takeover_changes_output(nct: bool, shrinks: bool) -> None:
    client, server = pair(client_nct=nct)
    message = NOISE[:4000]  # incompressible alone, tiny when it repeats the previous message
    first = client.compress_message(message)
    second = client.compress_message(message)
    assert len(first) > 4000
    assert (len(second) < 100) is shrinks
    assert inflate(server, first) == message
    assert inflate(server, second) == message


def test_accepts_any_bytes_like() -> None:
    client, server = pair()
    payload = client.compress_message(bytearray(TEXT))
    assert server.decompress_frame(memoryview(payload), fin=True, max_size=None) == TEXT
    payload = client.compress_message(memoryview(TEXT))
    assert server.decompress_frame(bytearray(payload), fin=True, max_size=None) == TEXT


@pytest.mark.parametrize("bits", [9, 10, 12, 15])
def test_window_bits_round_trip(bits: int) -> None:
    client, server = pair(client_bits=bits, server_bits=bits)
    for message in (TEXT, NOISE, TEXT):
        assert inflate(server, client.compress_message(message)) == message
        assert inflate(client, server.compress_message(message)) == message


def test_inflater_uses_the_agreed_window() -> None:
    message = NOISE[:2000]  # the second copy refers 2000 bytes back, into the first message
    sender = make(local_bits=15)
    first, second = sender.compress_message(message), sender.compress_message(message)
    receiver = make(remote_bits=11)
    assert inflate(receiver, first) + inflate(receiver, second) == message * 2
    receiver = make(remote_bits=10)
    assert inflate(receiver, first) == message
    with pytest.raises(RemoteProtocolError) as info:
        inflate(receiver, second)
    assert info.value.code == 1007


def test_remote_window_of_8_bits_is_inflated() -> None:
    # zlib's 9-bit compressor never reaches back more than 250 bytes, so its output fits 8 bits
    message = b"abcdefgh" * 500
    compressor = zlib.compressobj(9, zlib.DEFLATED, -9)
    payload = (compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]
    assert make(remote_bits=8).decompress_frame(payload, fin=True, max_size=None) == message


def test_no_zlib_memory_held_between_messages_without_context_takeover(tracemalloc: ModuleType) -> None:
    def held(nct: bool) -> int:
        tracemalloc.start()
        try:
            client, server = pair(client_nct=nct, server_nct=nct)
            inflate(server, client.compress_message(TEXT))
            return tracemalloc.get_traced_memory()[0]
        finally:
            tracemalloc.stop()

    assert held(False) > 250_000  # compressor (~262 KiB at 15/8) and inflater kept
    assert held(True) < 20_000


# size limits and decompression bombs: deflate stops inflating just past the budget it is
# given, and the protocol (the one place for the size rule) fails the message with 1009


def compressed_frames(payload: bytes, frames: int) -> List[bytes]:
    """One compressed message from a client, as ``frames`` masked frames (RSV1 on the first)."""
    step = max(1, -(-len(payload) // frames))
    pieces = [payload[i : i + step] for i in range(0, len(payload), step)] or [b""]
    out = []
    for index, piece in enumerate(pieces):
        key = os.urandom(4)
        opcode = TEXT_OP if index == 0 else CONT_OP
        out.append(b"".join(encode_frame(opcode, piece, index == len(pieces) - 1, index == 0, key)))
    return out


def receiver(max_size: Optional[int]) -> Protocol:
    """A server-side protocol with a negotiated deflate extension and ``max_size``."""
    return Protocol(False, max_message_size=max_size, max_fragments=None, extension=pair()[1])


def feed(protocol: Protocol, frames: List[bytes]) -> List[Any]:
    """Feed frames one by one; stop at the first failure."""
    events: List[Any] = []
    for frame in frames:
        events += protocol.receive_data(frame)
        if protocol.failure is not None:
            break
    return events


@pytest.mark.parametrize("frames", [1, 5])
def test_max_size_boundary(frames: int) -> None:
    payload = pair()[0].compress_message(TEXT)  # a fresh compressor: no context from earlier messages
    events = feed(receiver(len(TEXT)), compressed_frames(payload, frames))
    assert [e.data for e in events] == [TEXT.decode()]
    protocol = receiver(len(TEXT) - 1)
    assert feed(protocol, compressed_frames(payload, frames)) == []
    assert protocol.failure is not None and protocol.failure.code == 1009


def test_max_size_zero() -> None:
    client, server = pair()
    assert server.decompress_frame(client.compress_message(b""), fin=True, max_size=0) == b""
    assert len(server.decompress_frame(client.compress_message(b"a" * 100), fin=True, max_size=0)) == 1
    protocol = receiver(0)
    assert feed(protocol, compressed_frames(pair()[0].compress_message(b"a" * 100), 1)) == []
    assert protocol.failure is not None and protocol.failure.code == 1009


def bomb_chunk() -> bytes:
    """About 1 KiB of raw deflate that inflates to 1 MiB of zeros; copies can be concatenated."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = compressor.compress(bytes(1 << 20)) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert len(chunk) < 1100
    assert len(zlib.decompressobj(-15).decompress(chunk * 3)) == 3 << 20
    return chunk


def test_decompression_bomb_one_frame(tracemalloc: ModuleType) -> None:
    bomb = bomb_chunk() * 1024  # ~1 MiB that inflates to 1 GiB
    state = make()
    tracemalloc.start()
    try:
        out = state.decompress_frame(bomb, fin=True, max_size=1 << 20)
        protocol = receiver(1 << 20)
        feed(protocol, compressed_frames(bomb, 1))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == (1 << 20) + 1  # inflating stopped one byte past the budget
    assert protocol.failure is not None and protocol.failure.code == 1009
    assert peak < 8 << 20  # the limit trips while inflating: 1 GiB is never produced


def test_decompression_bomb_many_frames() -> None:
    chunk = bomb_chunk()
    limit = (5 << 20) + 10  # five chunks fit, the sixth does not
    protocol = receiver(limit)
    fed = 0
    while fed < 1024 and protocol.failure is None:  # 1 GiB in 1 KiB frames
        key = os.urandom(4)
        protocol.receive_data(b"".join(encode_frame(TEXT_OP if fed == 0 else CONT_OP, chunk, False, fed == 0, key)))
        fed += 1
    assert fed == 6  # stopped at the first frame past the limit, not after 1 GiB
    assert protocol.failure is not None and protocol.failure.code == 1009


# invalid compressed data


@pytest.mark.parametrize(
    ("frames", "why"),
    [
        ([b"\xff\xff\xff\xff"], "reserved block type"),
        ([HELLO_AGAIN], "distance too far back in a fresh window"),
        ([bytes.fromhex("f3 48 cd c9 c9 07 00") + HELLO], "data after a final block"),
        ([bytes.fromhex("f3 48 cd c9 c9 07 00"), b"abc"], "data after a final block, next frame"),
        ([bytes.fromhex("f3 48 cd c9 c9 07 00 00 01")], "a final block, then garbage"),
        ([bytes.fromhex("00 05 00 00 00") + b"Hello"], "stored block with a bad length check"),
    ],
)
def test_invalid_data_is_1007(frames: List[bytes], why: str) -> None:
    state = make()
    with pytest.raises(RemoteProtocolError) as info:
        for index, frame in enumerate(frames):
            state.decompress_frame(frame, fin=index == len(frames) - 1, max_size=1000)
    assert type(info.value) is RemoteProtocolError, why
    assert info.value.code == 1007


# PerMessageDeflate construction


def test_state_rejects_8_bit_local_window() -> None:
    with pytest.raises(ValueError, match="256-byte"):
        make(local_bits=8)
    assert make(remote_bits=8).remote_max_window_bits == 8
    with pytest.raises(ValueError):
        make(remote_bits=7)
    with pytest.raises(ValueError):
        make(local_bits=16)


# the extension header grammar (RFC 6455 section 9.1)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], []),
        ([""], []),
        (["permessage-deflate"], [("permessage-deflate", [])]),
        (["a; b; c=d", "e"], [("a", [("b", None), ("c", "d")]), ("e", [])]),
        ([' a ; b = c , d ;e="f" '], [("a", [("b", "c")]), ("d", [("e", "f")])]),
        (["a;\tb=1"], [("a", [("b", "1")])]),
        (['a; b="c\\d"'], [("a", [("b", "cd")])]),
        (["a, , b,"], [("a", []), ("b", [])]),
        (
            ['x-foo; y="1", permessage-deflate; client_max_window_bits'],
            [("x-foo", [("y", "1")]), ("permessage-deflate", [("client_max_window_bits", None)])],
        ),
    ],
)
def test_parse_extension_header(values: List[str], expected: List[Tuple[str, List[Tuple[str, Optional[str]]]]]) -> None:
    assert parse_extension_header(values) == expected


@pytest.mark.parametrize(
    "value",
    [
        "a;",
        "a; =b",
        "a; b=",
        "a b",
        "a; b=c d",
        'a; b="c d"',
        'a; b="c',
        'a; b=""',
        'a; b="c,d"',
        "a=b",
        ";a",
        "a;; b",
        "a\x00",
        "é",
        'a; b=c"',
        "a; b==c",
    ],
)
def test_parse_extension_header_rejects(value: str) -> None:
    with pytest.raises(NegotiationError):
        parse_extension_header(["ok", value])


def test_build_extension_round_trip() -> None:
    value = build_extension("x", [("a", None), ("b", "1")])
    assert value == "x; a; b=1"
    assert parse_extension_header([value]) == [("x", [("a", None), ("b", "1")])]


# configuration


@pytest.mark.parametrize(
    "kwargs",
    [
        {"server_max_window_bits": 7},
        {"client_max_window_bits": 16},
        {"compress_level": 10},
        {"compress_level": -2},
        {"mem_level": 0},
        {"mem_level": 10},
        {"threshold": -1},
    ],
)
def test_config_rejects(kwargs: Dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        DeflateConfig(**kwargs)


def test_config_rejects_8_bits_for_our_own_compressor() -> None:
    with pytest.raises(ValueError):
        client_offer(DeflateConfig(client_max_window_bits=8))
    with pytest.raises(ValueError):
        client_accept(["permessage-deflate"], DeflateConfig(client_max_window_bits=8))
    with pytest.raises(ValueError):
        server_accept(["permessage-deflate"], DeflateConfig(server_max_window_bits=8))
    # 8 bits for the peer is fine: we only inflate with it
    assert client_offer(DeflateConfig(server_max_window_bits=8)).endswith("server_max_window_bits=8; client_max_window_bits")
    assert server_accept(["permessage-deflate; client_max_window_bits"], DeflateConfig(client_max_window_bits=8))


# client side negotiation


@pytest.mark.parametrize(
    ("kwargs", "offer"),
    [
        ({}, "permessage-deflate; client_max_window_bits"),
        ({"client_max_window_bits": 10}, "permessage-deflate; client_max_window_bits=10"),
        ({"server_max_window_bits": 10}, "permessage-deflate; server_max_window_bits=10; client_max_window_bits"),
        (
            {"server_no_context_takeover": True, "client_no_context_takeover": True},
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits",
        ),
    ],
)
def test_client_offer(kwargs: Dict[str, Any], offer: str) -> None:
    assert client_offer(DeflateConfig(**kwargs)) == offer


# (config, response) -> (local_nct, remote_nct, local_bits, remote_bits)
CLIENT_ACCEPTS = [
    ({}, "permessage-deflate", (False, False, 15, 15)),
    ({}, "permessage-deflate; server_no_context_takeover", (False, True, 15, 15)),
    ({}, "permessage-deflate; client_no_context_takeover", (True, False, 15, 15)),
    ({"client_no_context_takeover": True}, "permessage-deflate", (True, False, 15, 15)),
    ({"server_no_context_takeover": True}, "permessage-deflate; server_no_context_takeover", (False, True, 15, 15)),
    ({}, "permessage-deflate; server_max_window_bits=10", (False, False, 15, 10)),
    ({}, "permessage-deflate; server_max_window_bits=8", (False, False, 15, 8)),
    ({}, 'permessage-deflate; server_max_window_bits="10"', (False, False, 15, 10)),
    ({"server_max_window_bits": 10}, "permessage-deflate; server_max_window_bits=10", (False, False, 15, 10)),
    ({"server_max_window_bits": 10}, "permessage-deflate; server_max_window_bits=9", (False, False, 15, 9)),
    ({}, "permessage-deflate; client_max_window_bits=10", (False, False, 10, 15)),
    ({"client_max_window_bits": 10}, "permessage-deflate", (False, False, 10, 15)),
    ({"client_max_window_bits": 10}, "permessage-deflate; client_max_window_bits=9", (False, False, 9, 15)),
    (
        {},
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
        "server_max_window_bits=12; client_max_window_bits=11",
        (True, True, 11, 12),
    ),
]


@pytest.mark.parametrize(("kwargs", "response", "expected"), CLIENT_ACCEPTS)
def test_client_accept(kwargs: Dict[str, Any], response: str, expected: Tuple[bool, bool, int, int]) -> None:
    config = DeflateConfig(threshold=10, **kwargs)
    state = client_accept([response], config)
    assert state is not None
    assert state.is_client
    assert (
        state.local_no_context_takeover,
        state.remote_no_context_takeover,
        state.local_max_window_bits,
        state.remote_max_window_bits,
    ) == expected
    assert state.threshold == 10


@pytest.mark.parametrize("values", [[], [""], [" , "]])
def test_client_accept_none(values: List[str]) -> None:
    assert client_accept(values, DeflateConfig()) is None


@pytest.mark.parametrize(
    ("kwargs", "values"),
    [
        ({"server_no_context_takeover": True}, ["permessage-deflate"]),
        ({"server_max_window_bits": 10}, ["permessage-deflate"]),
        ({"server_max_window_bits": 10}, ["permessage-deflate; server_max_window_bits=11"]),
        ({"client_max_window_bits": 10}, ["permessage-deflate; client_max_window_bits=11"]),
        ({}, ["permessage-deflate; client_max_window_bits=8"]),
        ({}, ["permessage-deflate; client_max_window_bits"]),
        ({}, ["permessage-deflate; server_max_window_bits"]),
        ({}, ["permessage-deflate; server_max_window_bits=7"]),
        ({}, ["permessage-deflate; server_max_window_bits=16"]),
        ({}, ["permessage-deflate; server_max_window_bits=08"]),
        ({}, ["permessage-deflate; server_max_window_bits=ten"]),
        ({}, ["permessage-deflate; server_no_context_takeover=1"]),
        ({}, ['permessage-deflate; client_no_context_takeover=""']),
        ({}, ["permessage-deflate; server_no_context_takeover; server_no_context_takeover"]),
        ({}, ["permessage-deflate; server_max_window_bits=10; server_max_window_bits=10"]),
        ({}, ["permessage-deflate; foo"]),
        ({}, ["permessage-deflate; Server_No_Context_Takeover"]),
        ({}, ["x-webkit-deflate-frame"]),
        ({}, ["Permessage-Deflate"]),
        ({}, ["permessage-deflate, permessage-deflate"]),
        ({}, ["permessage-deflate", "permessage-deflate"]),
        ({}, ["permessage-deflate", "x-foo"]),
        ({}, ["permessage-deflate;"]),
        ({}, ['permessage-deflate; server_max_window_bits="10']),
    ],
)
def test_client_accept_rejects(kwargs: Dict[str, Any], values: List[str]) -> None:
    with pytest.raises(NegotiationError):
        client_accept(values, DeflateConfig(**kwargs))


# server side negotiation

PMD = "permessage-deflate"

# (config, offers, response, (local_nct, remote_nct, local_bits, remote_bits))
SERVER_ACCEPTS = [
    ({}, [PMD], PMD, (False, False, 15, 15)),
    ({}, [f"{PMD}; client_max_window_bits"], PMD, (False, False, 15, 15)),
    ({}, [f"{PMD}; client_max_window_bits=12"], f"{PMD}; client_max_window_bits=12", (False, False, 15, 12)),
    ({}, [f"{PMD}; client_max_window_bits=8"], f"{PMD}; client_max_window_bits=8", (False, False, 15, 8)),
    (
        {"client_max_window_bits": 10},
        [f"{PMD}; client_max_window_bits"],
        f"{PMD}; client_max_window_bits=10",
        (False, False, 15, 10),
    ),
    ({"client_max_window_bits": 10}, [PMD], PMD, (False, False, 15, 15)),
    (
        {"client_max_window_bits": 10},
        [f"{PMD}; client_max_window_bits=12"],
        f"{PMD}; client_max_window_bits=10",
        (False, False, 15, 10),
    ),
    (
        {"client_max_window_bits": 10},
        [f"{PMD}; client_max_window_bits=9"],
        f"{PMD}; client_max_window_bits=9",
        (False, False, 15, 9),
    ),
    ({}, [f"{PMD}; server_max_window_bits=10"], f"{PMD}; server_max_window_bits=10", (False, False, 10, 15)),
    ({"server_max_window_bits": 12}, [PMD], f"{PMD}; server_max_window_bits=12", (False, False, 12, 15)),
    (
        {"server_max_window_bits": 12},
        [f"{PMD}; server_max_window_bits=10"],
        f"{PMD}; server_max_window_bits=10",
        (False, False, 10, 15),
    ),
    (
        {"server_max_window_bits": 12},
        [f"{PMD}; server_max_window_bits=14"],
        f"{PMD}; server_max_window_bits=12",
        (False, False, 12, 15),
    ),
    ({}, [f"{PMD}; server_no_context_takeover"], f"{PMD}; server_no_context_takeover", (True, False, 15, 15)),
    ({"server_no_context_takeover": True}, [PMD], f"{PMD}; server_no_context_takeover", (True, False, 15, 15)),
    ({}, [f"{PMD}; client_no_context_takeover"], f"{PMD}; client_no_context_takeover", (False, True, 15, 15)),
    ({"client_no_context_takeover": True}, [PMD], f"{PMD}; client_no_context_takeover", (False, True, 15, 15)),
    ({}, [f'{PMD}; client_max_window_bits="10"'], f"{PMD}; client_max_window_bits=10", (False, False, 15, 10)),
    (
        {},
        [f"{PMD}; client_max_window_bits=9; server_max_window_bits=10; client_no_context_takeover; server_no_context_takeover"],
        f"{PMD}; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=10; client_max_window_bits=9",
        (True, True, 10, 9),
    ),
    # several offers: the first acceptable one wins
    ({}, [f"{PMD}; server_max_window_bits=8, {PMD}"], PMD, (False, False, 15, 15)),
    (
        {},
        [f"{PMD}; server_max_window_bits=10; client_max_window_bits, {PMD}; client_max_window_bits"],
        f"{PMD}; server_max_window_bits=10",
        (False, False, 10, 15),
    ),
    (
        {},
        [f"{PMD}; foo, {PMD}; server_no_context_takeover"],
        f"{PMD}; server_no_context_takeover",
        (True, False, 15, 15),
    ),
    (
        {},
        [f"{PMD}; foo", f"{PMD}; client_no_context_takeover"],
        f"{PMD}; client_no_context_takeover",
        (False, True, 15, 15),
    ),
    ({}, [f"x-foo; bar, {PMD}"], PMD, (False, False, 15, 15)),
    ({}, ['x-foo; a="b', PMD], PMD, (False, False, 15, 15)),
    ({}, ["x-foo;;", f"{PMD}; server_max_window_bits=11"], f"{PMD}; server_max_window_bits=11", (False, False, 11, 15)),
]


@pytest.mark.parametrize(("kwargs", "offers", "response", "expected"), SERVER_ACCEPTS)
def test_server_accept(kwargs: Dict[str, Any], offers: List[str], response: str, expected: Tuple[bool, bool, int, int]) -> None:
    result = server_accept(offers, DeflateConfig(threshold=10, **kwargs))
    assert result is not None
    header, state = result
    assert header == response
    assert not state.is_client
    assert (
        state.local_no_context_takeover,
        state.remote_no_context_takeover,
        state.local_max_window_bits,
        state.remote_max_window_bits,
    ) == expected
    assert state.threshold == 10


@pytest.mark.parametrize(
    "offers",
    [
        [],
        [""],
        ["x-webkit-deflate-frame"],
        [f"{PMD}; server_max_window_bits=8"],
        [f"{PMD}; server_max_window_bits"],
        [f"{PMD}; server_max_window_bits=7"],
        [f"{PMD}; client_max_window_bits=16"],
        [f"{PMD}; client_max_window_bits=010"],
        [f"{PMD}; client_max_window_bits=x"],
        [f"{PMD}; server_no_context_takeover=true"],
        [f"{PMD}; client_no_context_takeover=1"],
        [f"{PMD}; client_no_context_takeover; client_no_context_takeover"],
        [f"{PMD}; client_max_window_bits; client_max_window_bits=10"],
        [f"{PMD}; server_max_window_bits=10; server_max_window_bits=11"],
        [f"{PMD}; unknown"],
        [f"{PMD};"],
        [f"{PMD} foo"],
        [f'{PMD}; client_max_window_bits="1 0"'],
        [f"{PMD}; foo", f"{PMD}; server_max_window_bits=8"],
        ["Permessage-Deflate"],
    ],
)
def test_server_declines(offers: List[str]) -> None:
    assert server_accept(offers, DeflateConfig()) is None


# negotiation end to end, then messages both ways

CONFIGS = [
    ({}, {}),
    ({"client_no_context_takeover": True}, {}),
    ({"server_no_context_takeover": True, "server_max_window_bits": 10}, {}),
    ({"client_max_window_bits": 9, "server_max_window_bits": 9}, {"client_no_context_takeover": True}),
    ({}, {"server_max_window_bits": 9, "client_max_window_bits": 9, "mem_level": 1, "compress_level": 1}),
    ({"client_max_window_bits": 12}, {"client_max_window_bits": 10, "server_no_context_takeover": True}),
]


@pytest.mark.parametrize(("client_kwargs", "server_kwargs"), CONFIGS)
def test_negotiate_then_exchange(client_kwargs: Dict[str, Any], server_kwargs: Dict[str, Any]) -> None:
    client_config = DeflateConfig(**client_kwargs)
    server_config = DeflateConfig(**server_kwargs)
    result = server_accept([client_offer(client_config)], server_config)
    assert result is not None
    response, server = result
    client = client_accept([response], client_config)
    assert client is not None
    assert client.local_max_window_bits == server.remote_max_window_bits
    assert client.remote_max_window_bits == server.local_max_window_bits
    assert client.local_no_context_takeover == server.remote_no_context_takeover
    assert client.remote_no_context_takeover == server.local_no_context_takeover
    for message in (TEXT, b"", NOISE, TEXT, b"ab" * 3000, TEXT):
        assert inflate(server, client.compress_message(message), frames=2) == message
        assert inflate(client, server.compress_message(message), frames=2) == message


def test_8_bit_windows_between_our_client_and_server() -> None:
    # our client asks our server to compress with 8 bits: the offer is declined, no compression
    assert server_accept([client_offer(DeflateConfig(server_max_window_bits=8))], DeflateConfig()) is None
    # our server limits clients to 8 bits: our client cannot compress that way and fails the handshake
    result = server_accept([client_offer(DeflateConfig())], DeflateConfig(client_max_window_bits=8))
    assert result is not None
    assert result[0] == f"{PMD}; client_max_window_bits=8"
    with pytest.raises(NegotiationError, match="client_max_window_bits=8"):
        client_accept([result[0]], DeflateConfig())
