"""The Sans-I/O state machine: events out of bytes, bytes out of sends."""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from simplews.exceptions import ConnectionClosedError, ConnectionClosedOK, LocalProtocolError
from simplews.frames import apply_mask, encode_header
from simplews.protocol import Close, Message, Ping, Pong, Protocol, State


def wire(buffers) -> bytes:
    return b"".join(bytes(b) for b in buffers)


def client_frame(opcode: int, payload: bytes, fin: bool = True, rsv1: bool = False) -> bytes:
    key = os.urandom(4)
    return encode_header(opcode, len(payload), fin=fin, rsv1=rsv1, mask_key=key) + apply_mask(payload, key)


def feed_bytewise(protocol: Protocol, data: bytes) -> list:
    events = []
    for i in range(len(data)):
        events += protocol.receive_data(data[i : i + 1])
    return events


@pytest.mark.parametrize("message", ["", "hello", "héllo wörld ☃", "x" * 70000, b"", b"\x00\xff" * 40000])
def test_round_trip_both_directions(message) -> None:
    client, server = Protocol(True), Protocol(False)
    assert server.receive_data(wire(client.send_message(message))) == [Message(message)]
    assert client.receive_data(wire(server.send_message(message))) == [Message(message)]


def test_automatic_fragmentation_and_reassembly() -> None:
    client, server = Protocol(True, frame_size=10), Protocol(False)
    data = wire(client.send_message("abcdefghij" * 5 + "é"))
    assert data.count(b"\x80") >= 1
    events = feed_bytewise(server, data)
    assert events == [Message("abcdefghij" * 5 + "é")]


def test_interleaved_control_frames_between_fragments() -> None:
    server = Protocol(False)
    data = client_frame(1, b"Hel", fin=False) + client_frame(9, b"p") + client_frame(0, b"lo")
    events = server.receive_data(data)
    assert events == [Ping(b"p"), Message("Hello")]
    assert wire(server.data_to_send()) == b"\x8a\x01p"


def test_many_frames_in_one_chunk() -> None:
    server = Protocol(False)
    data = b"".join(client_frame(1, str(i).encode()) for i in range(100))
    assert server.receive_data(data) == [Message(str(i)) for i in range(100)]


@pytest.mark.parametrize(
    "data, code",
    [
        (client_frame(3, b""), 1002),
        (client_frame(11, b""), 1002),
        (client_frame(0, b"x"), 1002),
        (client_frame(1, b"a", fin=False) + client_frame(1, b"b"), 1002),
        (client_frame(1, b"a", rsv1=True), 1002),
        (encode_header(1, 1) + b"a", 1002),
        (client_frame(1, b"\xff"), 1007),
        (client_frame(8, b"\x03"), 1002),
        (client_frame(8, b"\x03\xe8\xff"), 1007),
        (client_frame(8, (999).to_bytes(2, "big")), 1002),
    ],
)
def test_violations_fail_with_close_code(data: bytes, code: int) -> None:
    server = Protocol(False)
    server.receive_data(data)
    assert server.failure is not None and server.failure.code == code
    sent = wire(server.data_to_send())
    assert sent[0] == 0x88 and int.from_bytes(sent[2:4], "big") == code
    assert server.state is State.CLOSING
    assert server.receive_data(client_frame(1, b"ignored")) == []


def test_client_fails_masked_server_frames() -> None:
    client = Protocol(True)
    client.receive_data(client_frame(1, b"hi"))
    assert client.failure is not None and client.failure.code == 1002


def test_invalid_utf8_fails_fast_in_first_fragment() -> None:
    server = Protocol(False)
    assert server.receive_data(client_frame(1, b"ok\xed\xa0\x80", fin=False)) == []
    assert server.failure is not None and server.failure.code == 1007


def test_invalid_utf8_fails_fast_inside_a_partial_frame() -> None:
    server = Protocol(False)
    frame = client_frame(1, b"valid" + b"\xf4\x90\x80\x80" + b"x" * 1000)
    server.receive_data(frame[:20])
    assert server.failure is not None and server.failure.code == 1007


@pytest.mark.parametrize("split", range(1, 4))
def test_valid_utf8_split_across_fragments(split: int) -> None:
    text = "\U0001f600".encode()
    server = Protocol(False)
    data = client_frame(1, text[:split], fin=False) + client_frame(0, text[split:])
    assert server.receive_data(data) == [Message("\U0001f600")]


def test_message_size_limit_before_buffering() -> None:
    server = Protocol(False, max_message_size=100)
    server.receive_data(client_frame(2, b"x" * 50, fin=False))
    header = encode_header(0, 1 << 30, mask_key=b"abcd")
    server.receive_data(header)
    assert server.failure is not None and server.failure.code == 1009


def test_close_handshake_initiated_locally() -> None:
    client, server = Protocol(True), Protocol(False)
    client.send_close(1000, "bye")
    events = server.receive_data(wire(client.data_to_send()))
    assert events == [Close(1000, "bye")] and server.state is State.CLOSED
    assert client.state is State.CLOSING
    assert client.receive_data(wire(server.data_to_send())) == [Close(1000, "bye")]
    assert client.state is State.CLOSED
    assert isinstance(client.closed_exception(), ConnectionClosedOK)
    with pytest.raises(ConnectionClosedOK):
        client.send_message("late")


def test_empty_close_is_answered_with_empty_close() -> None:
    server = Protocol(False)
    assert server.receive_data(client_frame(8, b"")) == [Close(1005, "")]
    assert wire(server.data_to_send()) == b"\x88\x00"


def test_data_after_close_is_ignored() -> None:
    server = Protocol(False)
    events = server.receive_data(client_frame(8, b"\x03\xe8") + client_frame(1, b"late"))
    assert events == [Close(1000, "")]


def test_ping_answered_pong_reported_no_pong_after_close() -> None:
    server = Protocol(False)
    assert server.receive_data(client_frame(10, b"unsolicited")) == [Pong(b"unsolicited")]
    assert not server.has_pending
    server.send_close(1000)
    assert wire(server.data_to_send()) == b"\x88\x02\x03\xe8"
    server.receive_data(client_frame(9, b"x"))
    assert not server.has_pending


def test_eof_without_close_is_an_error() -> None:
    client = Protocol(True)
    client.receive_data(b"")
    assert client.state is State.CLOSED
    exc = client.closed_exception()
    assert isinstance(exc, ConnectionClosedError) and exc.code == 1006


def test_local_misuse_raises() -> None:
    client = Protocol(True)
    with pytest.raises(LocalProtocolError):
        client.send_ping(b"x" * 126)
    with pytest.raises(LocalProtocolError):
        client.send_close(1005)
    with pytest.raises(TypeError):
        client.send_message(123)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        client.send_message("\ud800")


def test_failure_close_reason_is_cut_to_123_utf8_bytes() -> None:
    server = Protocol(False)
    server.fail(1011, "é" * 200)
    sent = wire(server.data_to_send())
    assert sent[:2] == b"\x88\x7c"  # 2-byte code + 122 bytes: a 123rd would split a character
    assert sent[4:].decode("utf-8") == "é" * 61


# --- frames per message ------------------------------------------------------------


def test_default_fragment_cap_allows_4096_frames_and_fails_the_next_with_1009() -> None:
    server = Protocol(False)
    assert server.max_fragments == 4096
    frames = [client_frame(2, b"", fin=False)] + [client_frame(0, b"", fin=False) for _ in range(4094)]
    assert server.receive_data(b"".join(frames)) == []
    assert server.failure is None
    assert server.receive_data(client_frame(0, b"x")) == [Message(b"x")]  # frame 4096 ends it
    frames = [client_frame(1, b"", fin=False)] + [client_frame(0, b"a", fin=False) for _ in range(4095)]
    assert server.receive_data(b"".join(frames)) == []
    assert server.failure is None
    server.receive_data(client_frame(0, b"a", fin=False))  # frame 4097
    assert server.failure is not None and server.failure.code == 1009
    assert "4096 frames" in str(server.failure)
    close = wire(server.data_to_send())
    assert close[0] == 0x88 and close[2:4] == b"\x03\xf1"  # a close frame with 1009


def test_fragment_cap_is_configurable_and_none_is_unlimited() -> None:
    capped, unlimited = Protocol(False, max_fragments=3), Protocol(False, max_fragments=None)
    data = client_frame(2, b"a", fin=False) + b"".join(client_frame(0, b"b", fin=False) for _ in range(9999)) + client_frame(0, b"c")
    assert unlimited.receive_data(data) == [Message(b"a" + b"b" * 9999 + b"c")]
    capped.receive_data(data)
    assert capped.failure is not None and capped.failure.code == 1009


def test_control_frames_between_fragments_do_not_count() -> None:
    server = Protocol(False, max_fragments=2)
    data = client_frame(1, b"a", fin=False) + client_frame(9, b"p") * 50 + client_frame(0, b"b")
    events = server.receive_data(data)
    assert events[-1] == Message("ab") and server.failure is None


@pytest.mark.parametrize("frame_size", [256, 64 * 1024])
def test_our_sender_never_trips_a_default_receiver(frame_size: int) -> None:
    """The largest message a default receiver accepts, sent with frames as small as 256 bytes."""
    client, server = Protocol(True, frame_size=frame_size), Protocol(False)
    message = os.urandom(server.max_message_size or 0)
    assert server.receive_data(wire(client.send_message(message))) == [Message(message)]


@pytest.mark.parametrize("opcode", [1, 2])
def test_bookkeeping_of_a_message_does_not_grow_with_its_frame_count(opcode: int, tracemalloc: ModuleType) -> None:
    """4,000 one-byte fragments cost about their 4,000 bytes, not an object each."""
    server = Protocol(False)
    frames = b"".join(client_frame(opcode if i == 0 else 0, b"a", fin=False) for i in range(4000))
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(0, len(frames), 6):  # one frame per call, as a slow peer sends them
            server.receive_data(frames[i : i + 6])
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert server.failure is None
    assert held < 16 * 1024, held  # one object per fragment would be over 100 KiB
    assert server.receive_data(client_frame(0, b"z")) == [Message(("a" * 4000 + "z") if opcode == 1 else b"a" * 4000 + b"z")]


# --- pongs ----------------------------------------------------------------------------


def test_pings_are_answered_in_order_when_the_pongs_can_go() -> None:
    server = Protocol(False)
    server.receive_data(b"".join(client_frame(9, b"%d" % i) for i in range(10)))
    assert wire(server.data_to_send()) == b"".join(b"\x8a" + bytes([len(b"%d" % i)]) + b"%d" % i for i in range(10))


def test_a_ping_flood_owes_a_bounded_number_of_pongs_and_the_latest_is_answered() -> None:
    server = Protocol(False)
    for _ in range(100):  # nothing is written meanwhile: a peer that does not read
        server.receive_data(b"".join(client_frame(9, b"%d" % i) for i in range(1000)))
    out = server.data_to_send()
    assert 1 <= len(out) <= 16
    assert wire(out).endswith(b"\x8a\x03999")


def test_pongs_owed_go_before_the_close_frame() -> None:
    server = Protocol(False)
    server.receive_data(client_frame(9, b"p") + client_frame(8, b"\x03\xe8"))
    assert wire(server.data_to_send()) == b"\x8a\x01p" + b"\x88\x02\x03\xe8"
