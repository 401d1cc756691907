"""Pings, pongs, RSV bits, reserved opcodes and fragmentation (Autobahn 2.x, 3.x, 4.x, 5.x)."""

from __future__ import annotations

import os
import time

import pytest
from endpoints import Session
from rawpeer import BINARY, CLOSE, CONT, PING, PONG, TEXT

# --- 2.x pings and pongs ---------------------------------------------------------------------


@pytest.mark.parametrize("payload", [b"", b"x", b"Hello, world!", bytes(range(125)), os.urandom(125)])
def test_ping_answered_with_identical_pong(session: Session, payload: bytes) -> None:
    session.peer.send(PING, payload)
    session.peer.expect_frame(PONG, payload)
    session.close_normally()


def test_ping_of_126_bytes_fails_with_1002(session: Session) -> None:
    session.peer.send(PING, b"x" * 126)
    session.finish(1002)


def test_unsolicited_pongs_ignored(session: Session) -> None:
    session.peer.send(PONG, b"unsolicited")
    session.peer.send(PONG, b"")
    session.peer.send(TEXT, b"after the pongs")
    session.peer.expect_message(TEXT, b"after the pongs")
    session.close_normally()


def test_unsolicited_pong_then_ping(session: Session) -> None:
    session.peer.send(PONG, b"unsolicited")
    session.peer.send(PING, b"ping payload")
    session.peer.expect_frame(PONG, b"ping payload")
    session.close_normally()


@pytest.mark.parametrize("one_write", [False, True])
def test_ten_pings_answered_in_order(session: Session, one_write: bool) -> None:
    payloads = [f"ping {i}".encode() * (i + 1) for i in range(10)]
    frames = [session.peer.frame(PING, p) for p in payloads]
    if one_write:
        session.peer.send_raw(b"".join(frames))
    else:
        for data in frames:
            session.peer.send_raw(data)
    for payload in payloads:
        session.peer.expect_frame(PONG, payload)
    session.close_normally()


# --- 3.x reserved bits ------------------------------------------------------------------------


@pytest.mark.parametrize("rsv", range(1, 8))
@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING, CLOSE])
def test_rsv_bits_fail_with_1002(session: Session, opcode: int, rsv: int) -> None:
    # like Autobahn 3.2-3.7: a good message, the bad frame, then a ping that must not be answered
    session.peer.send(TEXT, b"before")
    payload = b"\x03\xe8" if opcode == CLOSE else b"bad"
    session.peer.send(opcode, payload, rsv=rsv)
    session.peer.send(PING, b"after")
    session.peer.expect_message(TEXT, b"before")
    session.finish(1002)


# --- 4.x reserved opcodes ---------------------------------------------------------------------

RESERVED_OPCODES = [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]


@pytest.mark.parametrize("payload", [b"", b"reserved"])
@pytest.mark.parametrize("opcode", RESERVED_OPCODES)
def test_reserved_opcodes_fail_with_1002(session: Session, opcode: int, payload: bytes) -> None:
    session.peer.send(TEXT, b"before")
    session.peer.send(opcode, payload)
    session.peer.send(PING, b"after")
    session.peer.expect_message(TEXT, b"before")
    session.finish(1002)


# --- 5.x fragmentation ------------------------------------------------------------------------


@pytest.mark.parametrize("fin", [True, False])
def test_continuation_without_start_fails(session: Session, fin: bool) -> None:
    session.peer.send(CONT, b"orphan", fin=fin)
    session.finish(1002)


def test_continuation_after_finished_message_fails(session: Session) -> None:
    session.peer.send(TEXT, b"done")
    session.peer.expect_message(TEXT, b"done")
    session.peer.send(CONT, b"too late", fin=True)
    session.finish(1002)


@pytest.mark.parametrize("second", [TEXT, BINARY])
@pytest.mark.parametrize("fin", [True, False])
def test_new_data_frame_inside_fragmented_message_fails(session: Session, second: int, fin: bool) -> None:
    session.peer.send(TEXT, b"first part", fin=False)
    session.peer.send(second, b"intruder", fin=fin)
    session.finish(1002)


@pytest.mark.parametrize("opcode", [PING, PONG, CLOSE])
def test_fragmented_control_frames_fail(session: Session, opcode: int) -> None:
    payload = b"\x03\xe8" if opcode == CLOSE else b"frag"
    session.peer.send(opcode, payload, fin=False)
    session.peer.send(CONT, b"ment", fin=True)
    session.finish(1002)


def test_control_frames_interleaved_between_fragments(session: Session) -> None:
    peer = session.peer
    peer.send(TEXT, b"frag1 ", fin=False)
    peer.send(PING, b"first ping")
    peer.expect_frame(PONG, b"first ping")
    peer.send(CONT, b"frag2 ", fin=False)
    peer.send(PONG, b"unsolicited")
    peer.send(PING, b"second ping")
    peer.expect_frame(PONG, b"second ping")
    peer.send(CONT, b"", fin=False)
    peer.send(CONT, b"frag3", fin=True)
    peer.expect_message(TEXT, b"frag1 frag2 frag3")
    session.close_normally()


def test_fragments_and_pings_in_one_write(session: Session) -> None:
    peer = session.peer
    blob = peer.frame(BINARY, b"\x00", fin=False) + peer.frame(PING, b"p") + peer.frame(CONT, b"\x01", fin=False)
    blob += peer.frame(PING, b"q") + peer.frame(CONT, b"\x02", fin=True)
    peer.send_raw(blob)
    peer.expect_frame(PONG, b"p")
    peer.expect_frame(PONG, b"q")
    peer.expect_message(BINARY, b"\x00\x01\x02")
    session.close_normally()


@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_empty_fragments(session: Session, opcode: int) -> None:
    session.peer.send(opcode, b"", fin=False)
    session.peer.send(CONT, b"", fin=False)
    session.peer.send(CONT, b"", fin=True)
    session.peer.expect_message(opcode, b"")
    session.close_normally()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_thousand_one_byte_fragments(session: Session, opcode: int, record_property: pytest.RecordProperty) -> None:
    payload = bytes(ord("a") + i % 26 for i in range(1000))
    peer = session.peer
    blob = b"".join(peer.frame(opcode if i == 0 else CONT, payload[i : i + 1], fin=i == 999) for i in range(1000))
    start = time.perf_counter()
    peer.send_raw(blob)
    peer.expect_message(opcode, payload)
    elapsed = time.perf_counter() - start
    record_property("thousand_fragments_seconds", round(elapsed, 4))
    print(f"\n1000 one-byte fragments, simplews {session.role}: {elapsed * 1000:.1f} ms")
    session.close_normally()


def test_fragments_one_frame_per_write(session: Session) -> None:
    peer = session.peer
    text = "fragmented ✓ message".encode()
    for i in range(len(text)):
        peer.send(TEXT if i == 0 else CONT, text[i : i + 1], fin=i == len(text) - 1)
    peer.expect_message(TEXT, text)
    session.close_normally()


@pytest.mark.parametrize("bad", ["opcode", "rsv", "unmasking", "utf8"])
def test_messages_before_a_violation_in_the_same_write_are_all_answered(session: Session, bad: str) -> None:
    """Everything before the bad frame is echoed in order, then the connection fails; nothing after it counts."""
    peer = session.peer
    messages = [f"message {i}".encode() for i in range(20)]
    blob = b"".join(peer.frame(TEXT, m) for m in messages)
    if bad == "opcode":
        blob += peer.frame(6, b"")
    elif bad == "rsv":
        blob += peer.frame(BINARY, b"x", rsv=2)
    elif bad == "unmasking":
        blob += peer.frame(TEXT, b"x", mask=not peer.is_client)
    else:
        blob += peer.frame(TEXT, b"\xc0\xaf")
    blob += peer.frame(PING, b"after") + peer.frame(TEXT, b"after")
    peer.send_raw(blob)
    for message in messages:
        peer.expect_message(TEXT, message)
    session.finish(1007 if bad == "utf8" else 1002)
