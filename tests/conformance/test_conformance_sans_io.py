"""Regression cases for the protocol layer behind the conformance suite, without sockets."""

from __future__ import annotations

import struct

from rawpeer import TEXT, build_frame

from simplews.protocol import Message, Protocol, State


def _server() -> Protocol:
    proto = Protocol(False)
    proto.defer_failure_close = True
    return proto


def _close_code(buffers: list) -> int:
    data = b"".join(bytes(b) for b in buffers)
    assert data[0] == 0x88, data
    return struct.unpack("!H", data[2:4])[0]


def test_deferred_failure_lets_earlier_messages_be_answered() -> None:
    proto = _server()
    events = proto.receive_data(build_frame(TEXT, b"before", mask=True) + build_frame(5, b"", mask=True))
    assert events == [Message("before")]
    assert proto.failure is not None and proto.failure.code == 1002 and proto.failure_deferred
    assert not proto.has_pending and proto.state is State.OPEN
    echo = b"".join(bytes(b) for b in proto.send_message("before"))  # still allowed: it answers an earlier message
    assert echo == b"\x81\x06before"
    proto.release_failure()
    assert _close_code(proto.data_to_send()) == 1002 and proto.state is State.CLOSING


def test_close_during_deferred_failure_sends_the_failure_code() -> None:
    proto = _server()
    proto.receive_data(build_frame(TEXT, b"\xff", mask=True))
    assert proto.failure_deferred
    proto.send_close(1000)
    assert _close_code(proto.data_to_send()) == 1007


def test_end_of_stream_during_a_deferred_failure_still_sends_its_close() -> None:
    proto = _server()
    proto.receive_data(build_frame(TEXT, b"before", mask=True) + build_frame(5, b"", mask=True))
    assert proto.failure_deferred
    assert proto.receive_data(b"") == []  # the peer ended its side: it can still read our close
    assert _close_code(proto.data_to_send()) == 1002 and proto.state is State.CLOSED
    assert proto.eof_to_send()


def test_without_deferral_the_close_is_queued_at_once() -> None:
    proto = Protocol(False)
    proto.receive_data(build_frame(TEXT, b"ok", mask=True) + build_frame(TEXT, b"x", rsv=4, mask=True))
    assert _close_code(proto.data_to_send()) == 1002


def test_surrogate_prefix_fails_fast_at_a_chunk_end() -> None:
    proto = _server()
    frame = build_frame(TEXT, b"ab\xed\xa0\x80cd", mask=True)
    assert proto.receive_data(frame[:-3]) == []  # the frame stops right after ED A0
    assert proto.failure is not None and proto.failure.code == 1007


def test_valid_three_byte_sequence_split_after_ed_9f() -> None:
    proto = _server()
    frame = build_frame(TEXT, "\ud7ff".encode(), mask=True)  # ED 9F BF: the last code point before the surrogates
    assert proto.receive_data(frame[:-1]) == []
    assert proto.receive_data(frame[-1:]) == [Message("\ud7ff")]
    assert proto.failure is None
