"""RFC 6455 section 5: frame encoding, parsing and masking."""

from __future__ import annotations

import os

import pytest

from simplews.exceptions import LocalProtocolError, RemoteProtocolError
from simplews.frames import (
    Frame,
    Opcode,
    _mask_int,
    _mask_translate,
    apply_mask,
    decode_utf8,
    encode_close,
    encode_frame,
    encode_header,
    is_valid_close_code,
    parse_close,
    parse_frame,
    parse_header,
    utf8_decoder,
)
from simplews.protocol import Protocol

# RFC 6455 section 5.7 examples
MASK = bytes.fromhex("37fa213d")


def joined(buffers) -> bytes:
    return b"".join(bytes(b) for b in buffers)


class TestSection57Examples:
    def test_single_frame_unmasked_text(self) -> None:
        assert joined(encode_frame(Opcode.TEXT, b"Hello")) == bytes.fromhex("810548656c6c6f")

    def test_single_frame_masked_text(self) -> None:
        expected = bytes.fromhex("818537fa213d7f9f4d5158")
        head = encode_header(Opcode.TEXT, 5, mask_key=MASK)
        assert head + apply_mask(b"Hello", MASK) == expected
        frame, used = parse_frame(expected)
        assert frame == Frame(Opcode.TEXT, b"Hello") and used == len(expected)

    def test_fragmented_unmasked_text(self) -> None:
        first = bytes.fromhex("010348656c")
        second = bytes.fromhex("80026c6f")
        assert joined(encode_frame(Opcode.TEXT, b"Hel", fin=False)) == first
        assert joined(encode_frame(Opcode.CONT, b"lo")) == second
        assert parse_frame(first)[0] == Frame(Opcode.TEXT, b"Hel", fin=False)
        assert parse_frame(second)[0] == Frame(Opcode.CONT, b"lo")

    def test_ping_and_pong(self) -> None:
        assert joined(encode_frame(Opcode.PING, b"Hello")) == bytes.fromhex("890548656c6c6f")
        pong = bytes.fromhex("8a8537fa213d7f9f4d5158")
        assert encode_header(Opcode.PONG, 5, mask_key=MASK) + apply_mask(b"Hello", MASK) == pong
        assert parse_frame(pong)[0] == Frame(Opcode.PONG, b"Hello")

    def test_256_bytes_binary(self) -> None:
        assert encode_header(Opcode.BINARY, 256) == bytes.fromhex("827e0100")

    def test_64k_binary(self) -> None:
        assert encode_header(Opcode.BINARY, 65536) == bytes.fromhex("827f0000000000010000")


@pytest.mark.parametrize("length", [0, 1, 125, 126, 127, 65535, 65536, 100_000])
@pytest.mark.parametrize("mask", [False, True])
def test_length_forms_round_trip(length: int, mask: bool) -> None:
    payload = os.urandom(length)
    data = joined(encode_frame(Opcode.BINARY, payload, mask_key=os.urandom(4) if mask else None))
    header_size = (2 if length < 126 else 4 if length < 65536 else 10) + (4 if mask else 0)
    assert len(data) == header_size + length
    frame, used = parse_frame(data)
    assert frame is not None and frame.payload == payload and used == len(data)
    # any prefix is incomplete, never an error
    assert parse_frame(data[:-1] if length else data[:1]) == (None, 0)


@pytest.mark.parametrize("length", [0, 1, 3, 4, 5, 63, 64, 65, 1000, 65536, 1 << 20])
def test_masking_paths_agree_and_round_trip(length: int) -> None:
    data = os.urandom(length)
    key = os.urandom(4)
    expected = bytes(b ^ key[i % 4] for i, b in enumerate(data[:2000]))
    masked = apply_mask(data, key)
    assert masked[:2000] == expected
    if length:
        assert _mask_int(data, key) == _mask_translate(data, key) == masked
    assert apply_mask(masked, key) == data
    assert apply_mask(memoryview(bytearray(data)), key) == masked


def test_mask_key_must_be_four_bytes() -> None:
    with pytest.raises(ValueError):
        apply_mask(b"abc", b"123")


def test_masked_frames_use_fresh_keys() -> None:
    protocol = Protocol(True)  # keys come from one pool per connection, refilled from os.urandom
    keys = set()
    for _ in range(300):
        protocol.send_ping(b"x")
        keys.add(joined(protocol.data_to_send())[2:6])
    assert len(keys) > 295


def test_header_rejects_oversized_control_frame() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_header(bytes([0x89, 126, 0, 126]))


def test_header_rejects_fragmented_control_frame() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_header(bytes([0x09, 0]))


def test_header_rejects_64bit_length_with_top_bit() -> None:
    with pytest.raises(RemoteProtocolError):
        parse_header(bytes([0x82, 127]) + (1 << 63).to_bytes(8, "big"))


@pytest.mark.parametrize("code", [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999])
def test_valid_close_codes(code: int) -> None:
    assert is_valid_close_code(code)
    assert parse_close(encode_close(code, "bye")) == (code, "bye")


@pytest.mark.parametrize("code", [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
def test_invalid_close_codes(code: int) -> None:
    assert not is_valid_close_code(code)
    with pytest.raises(LocalProtocolError):
        encode_close(code)
    with pytest.raises(RemoteProtocolError) as info:
        parse_close(code.to_bytes(2, "big"))
    assert info.value.code == 1002


def test_close_payload_edge_cases() -> None:
    assert parse_close(b"") == (1005, "")
    with pytest.raises(RemoteProtocolError):
        parse_close(b"\x03")
    with pytest.raises(RemoteProtocolError) as info:
        parse_close(b"\x03\xe8\xff")
    assert info.value.code == 1007
    with pytest.raises(LocalProtocolError):
        encode_close(1000, "x" * 124)
    assert encode_close(None) == b""


# UTF-16 surrogates (U+D800..U+DFFF) are not UTF-8 (RFC 3629): some interpreters' str(data, "utf-8")
# lets them through (PyPy 3.9), so each buffer type is checked whole and piece by piece
SURROGATES = [b"\xed\xa0\x80", b"\xed\xbf\xbf", b"\xed\xa0\x80\xed\xb0\x80"]


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("surrogate", SURROGATES)
def test_decode_utf8_refuses_surrogates_in_any_buffer(kind: type, surrogate: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        decode_utf8(kind(b"ok " + surrogate))
    assert info.value.code == 1007


@pytest.mark.parametrize("surrogate", SURROGATES)
def test_decode_utf8_refuses_a_surrogate_as_soon_as_its_first_two_bytes_arrive(surrogate: bytes) -> None:
    decoder = utf8_decoder()
    assert decode_utf8(b"ok \xed", decoder, final=False) == "ok "
    with pytest.raises(RemoteProtocolError) as info:
        decode_utf8(surrogate[1:2], decoder, final=False)
    assert info.value.code == 1007


def test_decode_utf8_accepts_the_neighbours_of_the_surrogates() -> None:
    text = "\ud7ff\ue000"
    assert decode_utf8(memoryview(text.encode())) == text
    decoder = utf8_decoder()
    assert "".join(decode_utf8(bytes([b]), decoder, final=False) for b in text.encode()) + decode_utf8(b"", decoder) == text
