"""Property-based tests: encode/parse round trips and a parser that survives any input.

Round trips cover every opcode, the three length forms, masking, RSV1,
fragmentation and control frames interleaved between fragments; every stream
is also cut at arbitrary points. Arbitrary bytes go through the same checks as
the fuzz targets in ``fuzz/`` (which run under atheris when it is installed).
"""

from __future__ import annotations

import os
import sys
from typing import List, Union

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simplews.deflate import PerMessageDeflate
from simplews.exceptions import LocalProtocolError, RemoteProtocolError
from simplews.frames import CONTROL_OPCODES, DATA_OPCODES, Frame, encode_frame, parse_frame
from simplews.handshake import (
    Headers,
    Request,
    accept_key,
    build_accept,
    build_request,
    check_request,
    check_response,
    parse_request,
    parse_response,
)
from simplews.protocol import Close, Message, Ping, Pong, Protocol, State

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "fuzz"))
import fuzz_frames  # noqa: E402
import fuzz_handshake  # noqa: E402

PROFILE = settings.get_profile("reliability")

# --- strategies --------------------------------------------------------------------------

lengths = st.one_of(st.integers(0, 125), st.integers(126, 65535), st.integers(65536, 70000))


@st.composite
def payloads(draw: st.DrawFn, length: st.SearchStrategy[int] = lengths) -> bytes:
    """Bytes of a length from any of the three length forms (cheap to build when long)."""
    n = draw(length)
    seed = draw(st.binary(min_size=1, max_size=32))
    return (seed * (n // len(seed) + 1))[:n]


messages = st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    payloads(),
    payloads().map(lambda b: b.decode("latin-1")),  # multi-byte UTF-8 across frame boundaries
)


def deflate(is_client: bool) -> PerMessageDeflate:
    return PerMessageDeflate(is_client=is_client, local_no_context_takeover=False, remote_no_context_takeover=False)


def wire(buffers: list) -> bytes:
    return b"".join(bytes(b) for b in buffers)


def split_frames(data: bytes) -> List[bytes]:
    """The raw bytes of each frame in a stream."""
    out = []
    while data:
        frame, used = parse_frame(data)
        assert frame is not None
        out.append(data[:used])
        data = data[used:]
    return out


def cut(data: bytes, points: List[int]) -> List[bytes]:
    """Split ``data`` at the given offsets (taken modulo its length)."""
    if not data:
        return [data]
    marks = sorted({p % len(data) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in zip(marks, marks[1:])]


# --- frames ------------------------------------------------------------------------------


@PROFILE
@given(
    opcode=st.sampled_from(sorted(DATA_OPCODES | CONTROL_OPCODES)),
    payload=payloads(),
    fin=st.booleans(),
    rsv1=st.booleans(),
    mask=st.booleans(),
    points=st.lists(st.integers(0, 1 << 20), max_size=4),
)
def test_frame_round_trip_every_opcode_length_form_and_mask(
    opcode: int, payload: bytes, fin: bool, rsv1: bool, mask: bool, points: List[int]
) -> None:
    if opcode in CONTROL_OPCODES:
        payload, fin = payload[:125], True
    data = wire(encode_frame(opcode, payload, fin=fin, rsv1=rsv1, mask_key=os.urandom(4) if mask else None))
    header = 2 + (0 if len(payload) < 126 else 2 if len(payload) < 65536 else 8) + (4 if mask else 0)
    assert len(data) == header + len(payload)
    assert parse_frame(data) == (Frame(opcode, payload, fin, rsv1), len(data))
    assert parse_frame(data + b"\x81\x00")[1] == len(data)
    for point in points:
        prefix = data[: point % len(data)]
        assert parse_frame(prefix) == (None, 0)


# --- protocol ----------------------------------------------------------------------------


@PROFILE
@given(
    batch=st.lists(messages, min_size=1, max_size=6),
    frame_size=st.one_of(st.none(), st.integers(1, 70000)),
    compressed=st.booleans(),
    client_sends=st.booleans(),
    pings=st.lists(st.binary(max_size=125), max_size=4),
    points=st.lists(st.integers(0, 1 << 20), max_size=8),
)
@example(batch=["é" * 40], frame_size=1, compressed=False, client_sends=True, pings=[b"x"], points=[1, 2, 3])
@example(batch=[b"x" * 5000], frame_size=1, compressed=False, client_sends=False, pings=[], points=[])
def test_protocol_round_trip_with_fragmentation_interleaved_controls_and_cuts(
    batch: List[Union[str, bytes]],
    frame_size: int,
    compressed: bool,
    client_sends: bool,
    pings: List[bytes],
    points: List[int],
) -> None:
    sender = Protocol(client_sends, frame_size=frame_size, extension=deflate(client_sends) if compressed else None)
    # no limits on the receiver: frame_size=1 makes messages of thousands of frames (the cap has its own tests)
    receiver = Protocol(
        not client_sends, max_message_size=None, max_fragments=None, extension=deflate(not client_sends) if compressed else None
    )
    control = Protocol(client_sends)
    frames = split_frames(b"".join(wire(sender.send_message(m)) for m in batch))
    # a ping (then a pong) after each of the first frames: controls may come between fragments
    stream = b""
    for i, frame in enumerate(frames):
        stream += frame
        if i < len(pings):
            control.send_ping(pings[i])
            control.send_pong(pings[i])
            stream += wire(control.data_to_send())
    sender.send_close(1000, "done")
    stream += wire(sender.data_to_send())
    events: list = []
    for chunk in cut(stream, points):
        events += receiver.receive_data(chunk)
    assert receiver.failure is None
    assert [e.data for e in events if isinstance(e, Message)] == list(batch)
    assert [e.data for e in events if isinstance(e, Ping)] == pings[: len(frames)]
    assert [e.data for e in events if isinstance(e, Pong)] == pings[: len(frames)]
    assert events[-1] == Close(1000, "done") and receiver.state is State.CLOSED
    # the receiver answered every ping and the close, in order
    answers = Protocol(client_sends, max_message_size=None).receive_data(wire(receiver.data_to_send()))
    assert answers[-1] == Close(1000, "done")
    assert [e.data for e in answers if isinstance(e, Pong)] == pings[: len(frames)]


@settings(PROFILE, max_examples=1000)
@given(data=st.binary(max_size=2048))
@example(data=b"\x01" + b"\x82\xff" + b"\x7f" * 8 + b"abcd")  # 2^63-ish length from a client
@example(data=b"\x00" + b"\x81\x7f\x80\x00\x00\x00\x00\x00\x00\x00")  # top bit set in a 64-bit length
def test_parser_fed_arbitrary_bytes_only_yields_events_or_fails_cleanly(data: bytes) -> None:
    fuzz_frames.check(data)


@st.composite
def mutated_streams(draw: st.DrawFn) -> bytes:
    """A valid stream of frames with a few bytes changed, cut or inserted."""
    flags = draw(st.integers(0, 255))
    is_client = bool(flags & 1)  # the side that receives
    sender = Protocol(not is_client, frame_size=draw(st.integers(1, 200)), extension=deflate(not is_client) if flags & 8 else None)
    data = b""
    for message in draw(st.lists(st.one_of(st.text(max_size=100), st.binary(max_size=300)), max_size=4)):
        data += wire(sender.send_message(message))
    if draw(st.booleans()):
        sender.send_ping(draw(st.binary(max_size=125)))
        data += wire(sender.data_to_send())
    sender.send_close(draw(st.sampled_from([1000, 1001, 4000])), draw(st.text(max_size=20)))
    data += wire(sender.data_to_send())
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.integers(0, 2))
        if op == 0:
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            del data[i]
        else:
            data.insert(i, draw(st.integers(0, 255)))
    return bytes([flags]) + bytes(data)


@settings(PROFILE, max_examples=500)
@given(data=mutated_streams())
def test_parser_fed_mutated_valid_streams(data: bytes) -> None:
    fuzz_frames.check(data)


@pytest.mark.parametrize("limit", [0, 1, 125, 1000])
def test_size_limit_is_enforced_before_buffering(limit: int) -> None:
    server = Protocol(False, max_message_size=limit)
    client = Protocol(True, frame_size=7)
    events = server.receive_data(wire(client.send_message(b"x" * (limit + 1))))
    assert events == [] and server.failure is not None and server.failure.code == 1009


# --- handshake ---------------------------------------------------------------------------

tokens = st.text(alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=20)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255, blacklist_characters="\x7f"), max_size=60).map(
    lambda s: s.strip(" \t")
)


_HANDSHAKE_HEADERS = {
    "host", "upgrade", "connection", "sec-websocket-key", "sec-websocket-version", "sec-websocket-protocol", "sec-websocket-extensions"
}
extra_names = tokens.filter(lambda name: name.lower() not in _HANDSHAKE_HEADERS)


@PROFILE
@given(
    path=st.text(alphabet="/abcxyz0189-._~%?=&", min_size=1, max_size=40).map(lambda p: "/" + p),
    extra=st.lists(st.tuples(extra_names, header_values), max_size=8),
    subprotocols=st.lists(tokens, max_size=4),
)
def test_handshake_request_round_trip(path: str, extra: list, subprotocols: List[str]) -> None:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    data = build_request("example.com:8080", path, key, subprotocols=subprotocols, extra_headers=extra)
    request = parse_request(data)
    assert request.path == path and request.method == "GET"
    assert check_request(request) == key
    for name, value in extra:
        assert value in request.headers.get_all(name)
    response = parse_response(build_accept(key, subprotocol=subprotocols[0] if subprotocols else None))
    assert check_response(response, key, subprotocols=subprotocols) == (subprotocols[0] if subprotocols else None)
    assert response.headers["Sec-WebSocket-Accept"] == accept_key(key)


@settings(PROFILE, max_examples=1000)
@given(data=st.binary(max_size=2048))
def test_handshake_parsers_fed_arbitrary_bytes(data: bytes) -> None:
    fuzz_handshake.check(data)


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    """A valid upgrade request or response with a few bytes changed."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    if draw(st.booleans()):
        head = build_request("h", "/", key, subprotocols=["chat"], extensions="permessage-deflate; client_max_window_bits")
    else:
        head = build_accept(key, subprotocol="chat", extensions="permessage-deflate; server_max_window_bits=10")
    data = bytearray(head)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] = draw(st.sampled_from([0, 9, 10, 13, 32, 34, 44, 58, 59, 61, 92, 0xC3, 0xFF, draw(st.integers(0, 255))]))
    return bytes(data)


@PROFILE
@given(data=mutated_requests())
def test_handshake_parsers_fed_mutated_valid_heads(data: bytes) -> None:
    fuzz_handshake.check(data)


@PROFILE
@given(value=st.text(max_size=20), where=st.integers(0, 20), bad=st.sampled_from(["\r", "\n", "\r\n", "\x00"]))
def test_header_values_with_cr_lf_nul_are_refused(value: str, where: int, bad: str) -> None:
    value = value[:where] + bad + value[where:]
    with pytest.raises(LocalProtocolError):
        Headers([("X-Test", value)])
    with pytest.raises(LocalProtocolError):
        build_request("h", "/", "k", extra_headers={"X-Test": value})
    with pytest.raises(LocalProtocolError):
        build_request("h", "/", "k", subprotocols=[value])


def test_request_object_from_parse_is_complete() -> None:
    request = parse_request(build_request("h", "/a?b=1", "dGhlIHNhbXBsZSBub25jZQ=="))
    assert isinstance(request, Request) and request.query == {"b": ["1"]}


def test_remote_protocol_error_is_the_only_parse_failure() -> None:
    # a text frame whose payload is invalid UTF-8, from a client
    server = Protocol(False)
    client = Protocol(True)
    data = wire(client.send_message(b"\xff\xfe", text=False))
    data = bytes([0x81]) + data[1:]  # claim it is text
    assert server.receive_data(data) == []
    assert isinstance(server.failure, RemoteProtocolError) and server.failure.code == 1007


def test_extra_host_header_replaces_the_default_instead_of_repeating_it() -> None:
    """Regression example found by hypothesis: a user header named like Host duplicated it."""
    data = build_request("example.com", "/", "dGhlIHNhbXBsZSBub25jZQ==", extra_headers=[("HOST", "other.example")])
    request = parse_request(data)
    assert request.headers.get_all("host") == ["other.example"]
    assert check_request(request)


@pytest.mark.parametrize("name", ["Upgrade", "connection", "Sec-WebSocket-Key", "SEC-WEBSOCKET-VERSION", "Sec-WebSocket-Protocol"])
def test_extra_headers_may_not_replace_handshake_headers(name: str) -> None:
    with pytest.raises(LocalProtocolError):
        build_request("example.com", "/", "dGhlIHNhbXBsZSBub25jZQ==", extra_headers=[(name, "x")])
