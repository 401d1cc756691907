"""Masking duties (RFC 6455 5.1, 5.3) and message size limits (1009)."""

from __future__ import annotations

import os
from typing import Callable, List

import pytest
from endpoints import ROLES, MiB, Session
from rawpeer import BINARY, CONT, PING, PONG, TEXT

# --- masking ------------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING])
def test_server_fails_unmasked_client_frame(open_session: Callable[..., Session], opcode: int) -> None:
    session = open_session("server")
    session.peer.send(opcode, b"naked", mask=False)
    session.finish(1002)


@pytest.mark.parametrize("opcode", [TEXT, BINARY, PING])
def test_client_fails_masked_server_frame(open_session: Callable[..., Session], opcode: int) -> None:
    session = open_session("client")
    session.peer.send(opcode, b"disguised", mask=True)
    session.finish(1002)


def test_client_masks_every_frame_with_a_fresh_key(open_session: Callable[..., Session], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every frame the client sends is masked (checked by the raw reader) with a fresh key from the OS CSPRNG (``os.urandom``)."""
    drawn: List[bytes] = []
    real = os.urandom

    def spy(n: int) -> bytes:
        value = real(n)
        drawn.append(value)
        return value

    monkeypatch.setattr(os, "urandom", spy)
    session = open_session("client", frame_size=1000)
    peer = session.peer
    messages = [os.urandom(n) for n in (0, 1, 4, 125, 126, 3000)] * 5
    for message in messages:
        peer.send(BINARY, message)
        peer.expect_message(BINARY, message)
    peer.send(PING, b"ping")
    peer.expect_frame(PONG, b"ping")
    session.close_normally()
    # 30 messages (the 3000-byte ones in 3 frames), a pong and a close: each with its own key
    assert len(peer.keys) == 30 + 5 * 2 + 2
    assert len(set(peer.keys)) == len(peer.keys)
    # keys come from a pool of os.urandom() output, 4-byte aligned slices, never reused
    pool = {d[i : i + 4] for d in drawn for i in range(0, len(d) - 3, 4)}
    assert set(peer.keys) <= pool


# --- limits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_message_at_the_limit_accepted(open_session: Callable[..., Session], role: str) -> None:
    session = open_session(role, max_message_size=MiB)
    payload = os.urandom(MiB)
    session.peer.send(BINARY, payload)
    session.peer.expect_message(BINARY, payload)
    session.close_normally()


@pytest.mark.parametrize("role", ROLES)
def test_oversized_frame_fails_with_1009_before_its_payload(open_session: Callable[..., Session], role: str) -> None:
    session = open_session(role, max_message_size=MiB)
    # declare 2 MiB, send only 64 KiB of it: the verdict must come from the header alone
    session.peer.send_raw(session.peer.frame(BINARY, b"\x00" * 65536, length=2 * MiB)[: 65536])
    session.finish(1009)


@pytest.mark.parametrize("role", ROLES)
def test_oversized_fragmented_message_fails_with_1009(open_session: Callable[..., Session], role: str) -> None:
    session = open_session(role, max_message_size=MiB)
    peer = session.peer
    chunk = b"a" * (256 * 1024)
    peer.send(TEXT, chunk, fin=False)
    for _ in range(3):
        peer.send(CONT, chunk, fin=False)  # exactly 1 MiB so far: still fine
    peer.send_raw(peer.frame(CONT, b"a", fin=False))  # one byte over: 1009 now, not at the end
    session.finish(1009)


@pytest.mark.parametrize("role", ROLES)
def test_oversized_message_sent_whole_then_1009(open_session: Callable[..., Session], role: str) -> None:
    """The whole oversized message arrives: it is refused and the bytes after it are not buffered into a message."""
    session = open_session(role, max_message_size=MiB)
    peer = session.peer
    try:
        peer.send(BINARY, os.urandom(MiB + 1))
    except OSError:
        pass  # the endpoint may already have closed its side
    session.finish(1009, reply=False)
