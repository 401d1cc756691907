"""send() of an iterable: one fragmented message, consumed as its frames go out, in both roles."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List

import pytest
from helpers import wait_for
from websockets.exceptions import ConnectionClosed as PeerClosed
from websockets.sync.client import connect as ws_connect

import simplews

FRAME = 1024


def test_client_pieces_arrive_as_one_message_at_websockets(peer_server: Callable[..., str]) -> None:
    got: List[Any] = []

    def handler(peer: Any) -> None:
        got.append(list(peer.recv_streaming()))
        got.append(peer.recv())

    url = peer_server(handler, max_size=None)
    pieces = ["é" * 100, "small", "x" * 5000, "", "end"]
    with simplews.connect(url, frame_size=FRAME) as ws:
        ws.send(iter(pieces))
        ws.send(b for b in [b"bin", bytearray(b"ary"), memoryview(b"!")])
        assert wait_for(lambda: len(got) == 2)
    fragments, binary = got
    assert "".join(fragments) == "".join(pieces)
    assert len(fragments) > 5  # cut into frames of FRAME bytes, not sent whole
    assert binary == b"binary!"


def test_nothing_is_sent_for_no_pieces(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url) as ws:
        ws.send(iter([]))
        ws.send("after")
        assert ws.recv(timeout=5) == "after"


def _lockstep(first_seen: threading.Event, asked: List[bool]) -> Iterator[bytes]:
    """Two frames' worth of pieces; piece 2 is made only once the peer has frame 1 (or 10 s passed)."""
    yield b"1" * FRAME
    asked.append(first_seen.wait(10))
    yield b"2" * FRAME


def test_client_generator_is_asked_for_piece_2_after_the_peer_got_frame_1(peer_server: Callable[..., str]) -> None:
    first_seen = threading.Event()
    received: List[bytes] = []

    def handler(peer: Any) -> None:
        for fragment in peer.recv_streaming():
            received.append(fragment)
            first_seen.set()

    asked: List[bool] = []
    with simplews.connect(peer_server(handler), frame_size=FRAME) as ws:
        ws.send(_lockstep(first_seen, asked))
        assert wait_for(lambda: b"".join(received) == b"1" * FRAME + b"2" * FRAME)
    assert asked == [True]


def test_server_generator_is_asked_for_piece_2_after_the_peer_got_frame_1(
    server_factory: Callable[..., simplews.Server],
) -> None:
    first_seen = threading.Event()
    asked: List[bool] = []
    server = server_factory(on_open=lambda ws: ws.send(_lockstep(first_seen, asked)), frame_size=FRAME)
    with ws_connect(server.url, compression=None) as peer:
        fragments = []
        for fragment in peer.recv_streaming():
            fragments.append(fragment)
            first_seen.set()
    assert b"".join(fragments) == b"1" * FRAME + b"2" * FRAME and asked == [True]


@pytest.mark.parametrize("peer", ["simplews", "websockets"])
def test_a_piece_of_the_other_type_fails_with_1011(
    peer: str, server_factory: Callable[..., simplews.Server], peer_server: Callable[..., str]
) -> None:
    codes: List[Any] = []

    def peer_handler(ws: Any) -> None:
        try:
            ws.recv()
        except PeerClosed as exc:
            codes.append(exc.rcvd.code if exc.rcvd else None)

    def our_handler(ws: simplews.Connection) -> None:
        try:
            ws.recv(timeout=10)
        except simplews.ConnectionClosed as exc:
            codes.append(exc.code)

    url = server_factory(our_handler).url if peer == "simplews" else peer_server(peer_handler)
    with simplews.connect(url, frame_size=1) as ws:
        with pytest.raises(TypeError, match="bytes-like"):
            ws.send(iter([1]))  # nothing went out yet: the connection is fine
        with pytest.raises(TypeError, match="first piece"):
            ws.send(iter(["a", b"b"]))
        assert ws.wait_closed(10) and ws.close_code == 1011
    assert wait_for(lambda: codes == [1011])


def test_during_a_message_in_pieces_control_frames_flow_and_other_messages_wait(
    server_factory: Callable[..., simplews.Server],
) -> None:
    proceed = threading.Event()
    paused = threading.Event()

    def pieces() -> Iterator[str]:
        yield "a" * FRAME
        paused.set()
        proceed.wait(10)
        yield "b" * FRAME

    server = server_factory(on_open=lambda ws: ws.send(pieces()), frame_size=FRAME, ping_interval=None)
    try:
        with ws_connect(server.url, compression=None, ping_interval=None) as peer:
            assert paused.wait(10)
            (conn,) = server.connections
            other_done = threading.Event()
            other = threading.Thread(target=lambda: (conn.send("other"), other_done.set()))
            other.start()
            assert server.broadcast("news", connections=[conn], text=True) == 1  # taken, waits for the message
            rtt = conn.ping().wait(10)  # a ping and its pong go between the frames
            assert rtt is not None and rtt > 0
            assert not other_done.is_set()  # another thread's message cannot go in the middle
            proceed.set()
            other.join(10)
            assert peer.recv(timeout=10) == "a" * FRAME + "b" * FRAME
            assert {peer.recv(timeout=10), peer.recv(timeout=10)} == {"other", "news"}
    finally:
        proceed.set()


def test_a_close_between_pieces_ends_the_message(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url, frame_size=FRAME) as ws:

        def pieces() -> Iterator[bytes]:
            yield b"1" * FRAME
            threading.Thread(target=ws.close).start()
            assert ws.wait_closed(10)
            yield b"2" * FRAME

        with pytest.raises(simplews.ConnectionClosed):
            ws.send(pieces())
    assert ws.close_code == 1000


def test_text_option_with_pieces(peer_server: Callable[..., str]) -> None:
    url = peer_server(lambda peer: [peer.send(m) for m in peer])
    with simplews.connect(url, frame_size=2) as ws:
        ws.send(iter([b"caf", "é".encode()]), text=True)  # é cut between two frames
        assert ws.recv(timeout=5) == "café"
        ws.send(iter(["bin", "ary"]), text=False)
        assert ws.recv(timeout=5) == b"binary"
        with pytest.raises(simplews.LocalProtocolError):
            ws.send(iter([b"\xff"]), text=True)  # refused before anything went out
        ws.send("still open")
        assert ws.recv(timeout=5) == "still open"
        with pytest.raises(simplews.LocalProtocolError):
            ws.send(iter([b"ok", b"\xff"]), text=True)
        assert ws.wait_closed(10) and ws.close_code == 1011
