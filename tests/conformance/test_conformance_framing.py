"""Framing (Autobahn 1.x, 9.x, 10.x): payload lengths across the 7/16/64-bit encodings, odd TCP chunking."""

from __future__ import annotations

import os
import time

import pytest
from endpoints import MiB, Session
from rawpeer import BINARY, PING, PONG, TEXT

SIZES = [0, 125, 126, 127, 65535, 65536]


def _payload(opcode: int, size: int) -> bytes:
    """A payload of ``size`` bytes: random bytes, or valid UTF-8 text with multi-byte characters."""
    if opcode == BINARY:
        return os.urandom(size)
    unit = "aé€😀".encode()  # 1+2+3+4 bytes: 10 bytes per unit
    data = unit * (size // len(unit)) + b"z" * (size % len(unit))
    return data


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_echo_sizes(session: Session, opcode: int, size: int) -> None:
    payload = _payload(opcode, size)
    session.peer.send(opcode, payload)
    session.peer.expect_message(opcode, payload)
    session.close_normally()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_echo_16_mib(session: Session, opcode: int, record_property: pytest.RecordProperty) -> None:
    payload = _payload(opcode, 16 * MiB)
    start = time.perf_counter()
    session.peer.send(opcode, payload)
    session.peer.expect_message(opcode, payload, timeout=100)
    elapsed = time.perf_counter() - start
    record_property("echo_16mib_seconds", round(elapsed, 3))
    print(f"\n16 MiB {'text' if opcode == TEXT else 'binary'} echo, simplews {session.role}: {elapsed:.2f} s")
    session.close_normally()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 1000, 65535, 65536])
@pytest.mark.parametrize("opcode", [TEXT, BINARY])
def test_one_byte_per_write(session: Session, opcode: int, size: int) -> None:
    payload = _payload(opcode, size)
    for byte in session.peer.frame(opcode, payload):
        session.peer.send_raw(bytes([byte]))
    session.peer.expect_message(opcode, payload)
    session.close_normally()


def test_64_bit_length_header_one_byte_per_write(session: Session) -> None:
    payload = os.urandom(65536)
    data = session.peer.frame(BINARY, payload)
    header_size = 14 if session.peer.is_client else 10
    for byte in data[:header_size]:
        session.peer.send_raw(bytes([byte]))
    for start in range(header_size, len(data), 997):
        session.peer.send_raw(data[start : start + 997])
    session.peer.expect_message(BINARY, payload)
    session.close_normally()


def test_many_frames_in_one_write(session: Session) -> None:
    messages = [(TEXT if i % 2 else BINARY, _payload(TEXT if i % 2 else BINARY, i * 37 % 300)) for i in range(100)]
    blob = b"".join(session.peer.frame(op, data) for op, data in messages)
    blob += session.peer.frame(PING, b"in the middle")
    blob += b"".join(session.peer.frame(op, data) for op, data in messages[:5])
    session.peer.send_raw(blob)
    expected = messages + messages[:5]
    got, pongs = [], []
    while len(got) < len(expected):
        frame = session.peer.read_frame()
        assert frame is not None and frame.fin, frame
        if frame.opcode == PONG:  # the pong may overtake echoes: RFC 6455 5.5.2 only asks "as soon as practical"
            pongs.append(frame.payload)
        else:
            got.append((frame.opcode, frame.payload))
    if not pongs:
        session.peer.expect_frame(PONG, b"in the middle")
    else:
        assert pongs == [b"in the middle"]
    assert got == expected
    session.close_normally()


def test_many_frames_split_at_odd_boundaries(session: Session) -> None:
    messages = [_payload(TEXT, n) for n in (3, 126, 1, 65536, 0, 200)]
    blob = b"".join(session.peer.frame(TEXT, data) for data in messages)
    for start in range(0, len(blob), 7919):
        session.peer.send_raw(blob[start : start + 7919])
    for data in messages:
        session.peer.expect_message(TEXT, data)
    session.close_normally()
