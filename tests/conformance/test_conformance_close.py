"""The close handshake (Autobahn 7.x) and who closes TCP first."""

from __future__ import annotations

import queue
import socket
import struct
import threading
from typing import Any, Callable, Dict

import pytest
from endpoints import BASE_OPTIONS, CLOSE_REQUEST, JOIN_TIMEOUT, Session
from helpers import wait_for
from rawpeer import BINARY, CLOSE, PING, TEXT, RawPeer, client_handshake, close_payload, server_handshake

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


# --- messages that cross our close frame ----------------------------------------------------


def _late_peer_replies(peer: RawPeer, count: int = 2) -> None:
    """After the endpoint's close frame: ``count`` messages, then the close reply (they crossed on the wire)."""
    peer.expect_close_frame(1000)
    for i in range(count):
        peer.send(TEXT if i % 2 == 0 else BINARY, f"late {i}".encode())
    peer.send_close(1000)


def test_client_reads_messages_sent_before_the_servers_close_after_its_own_close() -> None:
    """RFC 6455 1.4: data may still arrive after sending a close; what came before the peer's close is readable."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(JOIN_TIMEOUT)
        result: Dict[str, Any] = {}

        def client() -> None:
            try:
                ws = simplews.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", **BASE_OPTIONS)
                ws.close()  # our close goes first; the server's two messages cross it
                result["late"] = list(ws)  # the iteration ends at the normal close
                result["code"] = ws.close_code
            except BaseException as exc:
                result["error"] = exc

        thread = threading.Thread(target=client, name="test-late-client")
        thread.start()
        sock, _ = listener.accept()
        peer, _ = server_handshake(sock)
        try:
            _late_peer_replies(peer)
            peer.close()  # the server closes TCP first
        finally:
            thread.join(JOIN_TIMEOUT)
    assert result == {"late": ["late 0", b"late 1"], "code": 1000}


def test_server_reads_messages_sent_before_the_clients_close_after_its_own_close() -> None:
    late: queue.Queue[Any] = queue.Queue()

    def handler(ws: simplews.Connection) -> None:
        ws.close()
        late.put(list(ws))

    with simplews.serve(handler, port=0, **BASE_OPTIONS) as server:
        peer = client_handshake(server.port)
        try:
            _late_peer_replies(peer)
            peer.wait_eof()
        finally:
            peer.close()
        assert late.get(timeout=JOIN_TIMEOUT) == ["late 0", b"late 1"]


def test_messages_kept_during_the_close_are_bounded_by_max_queue() -> None:
    """A peer flooding after our close frame does not grow the queue without bound: the rest is dropped."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(JOIN_TIMEOUT)
        result: Dict[str, Any] = {}

        def client() -> None:
            ws = simplews.connect(f"ws://127.0.0.1:{listener.getsockname()[1]}/", max_queue=4, **BASE_OPTIONS)
            ws.close(timeout=JOIN_TIMEOUT)
            result["late"] = list(ws)

        thread = threading.Thread(target=client, name="test-late-client")
        thread.start()
        sock, _ = listener.accept()
        peer, _ = server_handshake(sock)
        try:
            peer.expect_close_frame(1000)
            for i in range(2000):
                peer.send(TEXT, b"%04d" % i + b"x" * 1000)
            peer.send_close(1000)
            peer.close()
        finally:
            thread.join(JOIN_TIMEOUT)
    late = result["late"]
    assert 4 <= len(late) < 2000 and late[:4] == [f"{i:04d}" + "x" * 1000 for i in range(4)]
