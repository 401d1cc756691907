"""The close handshake (Autobahn 7.x) and who closes TCP first."""

from __future__ import annotations

import struct
from typing import Callable

import pytest
from endpoints import CLOSE_REQUEST, Session
from helpers import wait_for
from rawpeer import BINARY, CLOSE, PING, TEXT, close_payload

import simplews
from simplews.protocol import Close, Protocol

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3001, 3999, 4000, 4001, 4567, 4999]
INVALID_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 5001, 65535]


def _is_valid(code: int) -> bool:
    """RFC 6455 7.4.1 plus the IANA registry (1012-1014): codes a peer may send."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@pytest.mark.parametrize("code", VALID_CODES)
def test_valid_close_codes_echoed(session: Session, code: int) -> None:
    session.peer.send(CLOSE, close_payload(code, b"reason"))
    session.peer.expect_close_frame(code)
    session.end_tcp()
    assert session.endpoint_code() == code


@pytest.mark.parametrize("code", INVALID_CODES)
def test_invalid_close_codes_fail_with_1002(session: Session, code: int) -> None:
    session.peer.send(CLOSE, close_payload(code))
    session.finish(1002, reply=False)


@pytest.mark.parametrize("role", [False, True], ids=["server", "client"])
def test_every_close_code_sans_io(role: bool) -> None:
    """All 65536 codes through the protocol layer: echoed when valid, 1002 otherwise."""
    for code in range(65536):
        proto = Protocol(role)
        mask = b"\x00\x00\x00\x00"
        frame = (b"\x88\x82" + mask if not role else b"\x88\x02") + struct.pack("!H", code)
        events = proto.receive_data(frame)
        out = b"".join(bytes(b) for b in proto.data_to_send())
        reply = bytes(a ^ b for a, b in zip(out[6:8], out[2:4])) if role else out[2:4]
        if _is_valid(code):
            assert events == [Close(code, "")] and struct.unpack("!H", reply)[0] == code, code
        else:
            assert proto.failure is not None and proto.failure.code == 1002, code
            assert struct.unpack("!H", reply)[0] == 1002, code


def test_empty_close_answered_with_empty_close(session: Session) -> None:
    # Autobahn 7.3.1: no status code received, none sent back
    session.peer.send(CLOSE, b"")
    session.peer.expect_close_frame(None)
    session.end_tcp()
    assert session.endpoint_code() == 1005


def test_one_byte_close_payload_fails_with_1002(session: Session) -> None:
    session.peer.send(CLOSE, b"\x03")
    session.finish(1002, reply=False)


def test_close_with_123_byte_reason_echoed(session: Session) -> None:
    reason = b"r" * 123
    session.peer.send(CLOSE, close_payload(1000, reason))
    session.peer.expect_close_frame(1000, reason)
    session.end_tcp()
    assert session.endpoint_code() == 1000


def test_close_payload_of_126_bytes_fails_with_1002(session: Session) -> None:
    session.peer.send(CLOSE, close_payload(1000, b"r" * 124))
    session.finish(1002, reply=False)


@pytest.mark.parametrize("after", ["text", "ping", "fragment", "all"])
def test_frames_after_close_ignored(session: Session, after: str) -> None:
    # Autobahn 7.1.2-7.1.5: nothing after the close frame gets an answer
    peer = session.peer
    blob = peer.frame(CLOSE, close_payload(1000))
    if after in ("text", "all"):
        blob += peer.frame(TEXT, b"after close")
    if after in ("ping", "all"):
        blob += peer.frame(PING, b"after close")
    if after in ("fragment", "all"):
        blob += peer.frame(BINARY, b"frag", fin=False) + peer.frame(0, b"ment")
    peer.send_raw(blob)
    peer.expect_close_frame(1000)
    session.end_tcp()  # and no echo, pong or second close came before the end
    assert session.endpoint_code() == 1000


def test_message_before_close_echoed_first(session: Session) -> None:
    peer = session.peer
    peer.send_raw(peer.frame(TEXT, b"last words") + peer.frame(PING, b"p"))
    peer.expect_frame(0xA, b"p")
    peer.expect_message(TEXT, b"last words")
    session.close_normally()


def test_client_waits_for_server_to_close_tcp(open_session: Callable[..., Session]) -> None:
    session = open_session("client", close_timeout=30)
    peer = session.peer
    peer.send_close(1000)
    peer.expect_close_frame(1000)
    assert session.client is not None
    # the client must not drop TCP first: it is still connected while we hold the connection open
    assert not wait_for(lambda: not peer.peer_still_open(), timeout=0.5)
    assert session.client.thread.is_alive()
    peer.close()
    assert session.endpoint_code() == 1000


def test_client_gives_up_waiting_after_close_timeout(open_session: Callable[..., Session]) -> None:
    session = open_session("client", close_timeout=0.5)
    peer = session.peer
    peer.send_close(1000)
    peer.expect_close_frame(1000)
    peer.wait_eof(timeout=10)  # the server never closed TCP; the client did after close_timeout
    assert session.endpoint_code() == 1000
    assert session.client is not None and session.client.error is None  # the loop ended normally


def test_client_initiated_close_waits_for_server(open_session: Callable[..., Session]) -> None:
    """The client starts the close (failing on a bad frame) and then still lets the server close TCP."""
    session = open_session("client", close_timeout=30)
    peer = session.peer
    peer.send(4, b"")  # reserved opcode
    peer.expect_close_frame(1002)
    assert not wait_for(lambda: not peer.peer_still_open(), timeout=0.5)
    peer.send_close(1002)
    peer.close()
    assert session.endpoint_code() == 1002
    assert isinstance(session.client.error, simplews.ConnectionClosedError)  # type: ignore[union-attr]


def test_close_started_by_simplews(session: Session) -> None:
    """simplews starts the close: it waits for our close, then the server drops TCP first / the client waits for it."""
    peer = session.peer
    peer.send(TEXT, CLOSE_REQUEST.encode())
    peer.expect_close_frame(4001, b"asked to")
    peer.send(TEXT, b"ignored: the endpoint already sent its close")
    session.end_tcp(reply_code=4001)
    assert session.endpoint_code() == 4001
