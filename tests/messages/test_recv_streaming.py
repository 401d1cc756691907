"""recv_streaming() and on_fragment: a message handed out as it arrives, in both roles."""

from __future__ import annotations

import threading
from typing import Any, Callable, Iterator, List, Tuple

import pytest
import websocket  # websocket-client
from helpers import wait_for
from websockets.sync.client import connect as ws_connect

import simplews

FRAME = 1024


def _lockstep(handed_out: threading.Event, waited: List[bool], kind: type = bytes) -> Iterator[Any]:
    """Piece 1; piece 2 only once the receiving application has fragment 1 (or 10 s passed)."""
    yield kind(b"1" * FRAME) if kind is bytes else "1" * FRAME
    waited.append(handed_out.wait(10))
    yield kind(b"2" * FRAME) if kind is bytes else "2" * FRAME


def test_client_gets_fragment_1_before_websockets_sends_fragment_2(peer_server: Callable[..., str]) -> None:
    handed_out = threading.Event()
    waited: List[bool] = []
    url = peer_server(lambda peer: peer.send(_lockstep(handed_out, waited, str)))
    pieces = []
    with simplews.connect(url) as ws:
        for piece in ws.recv_streaming(timeout=10):
            pieces.append(piece)
            handed_out.set()
    assert "".join(pieces) == "1" * FRAME + "2" * FRAME and waited == [True]


@pytest.mark.parametrize("sender", ["websockets", "simplews"])
def test_server_gets_fragment_1_before_the_client_sends_fragment_2(
    sender: str, server_factory: Callable[..., simplews.Server]
) -> None:
    handed_out = threading.Event()
    waited: List[bool] = []
    pieces: List[Any] = []

    def handler(ws: simplews.Connection) -> None:
        for piece in ws.recv_streaming(timeout=10):
            pieces.append(piece)
            handed_out.set()
        ws.send("done")

    server = server_factory(handler)
    if sender == "websockets":
        peer: Any = ws_connect(server.url, compression=None)
    else:
        peer = simplews.connect(server.url, frame_size=FRAME)
    with peer:
        peer.send(_lockstep(handed_out, waited))
        assert peer.recv(timeout=10) == "done"
    assert b"".join(pieces) == b"1" * FRAME + b"2" * FRAME and waited == [True]


def _stream_after(ws: simplews.Connection, ask: str, **options: Any) -> Any:
    """The pieces of the message the server sends when asked, received by a ``recv_streaming()`` waiting before it is sent."""
    results: List[Any] = []

    def receive() -> None:
        try:
            results.append(list(ws.recv_streaming(timeout=10, **options)))
        except simplews.ConnectionClosed as exc:
            results.append(exc)

    receiver = threading.Thread(target=receive)
    receiver.start()  # waiting for the message before it is sent: it is not read ahead whole
    assert wait_for(lambda: ws._reader.streaming)
    ws.send(ask)
    receiver.join(10)
    return results[0]


def test_text_is_cut_on_character_boundaries(server_factory: Callable[..., simplews.Server]) -> None:
    text = "é☃\U0001f600" * 2000  # 2, 3 and 4 byte characters: frames of 1000 bytes cut inside them
    server = server_factory(on_message=lambda ws, m: ws.send(iter([text])), frame_size=1000)
    with simplews.connect(server.url) as ws:
        pieces = _stream_after(ws, "go")
        assert len(pieces) > 10 and all(isinstance(p, str) for p in pieces)
        assert "".join(pieces) == text


def test_decode_false_streams_text_as_bytes(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url) as ws:
        ws.send("héllo")
        assert list(ws.recv_streaming(timeout=5, decode=False)) == ["héllo".encode()]


def test_invalid_utf8_is_still_refused_with_1007(server_factory: Callable[..., simplews.Server]) -> None:
    seen: List[Any] = []

    def handler(ws: simplews.Connection) -> None:
        try:
            for piece in ws.recv_streaming(timeout=10):
                seen.append(piece)
        except simplews.ConnectionClosed as exc:
            seen.append(exc.code)

    server = server_factory(handler)
    peer = websocket.create_connection(server.url, timeout=10)
    try:
        peer.send_frame(websocket.ABNF.create_frame(b"ok ", websocket.ABNF.OPCODE_TEXT, fin=0))
        assert wait_for(lambda: seen == ["ok "])  # fragment 1 reached the application
        peer.send_frame(websocket.ABNF.create_frame(b"\xff\xfe", websocket.ABNF.OPCODE_CONT, fin=1))
        opcode, data = peer.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE and data[:2] == (1007).to_bytes(2, "big")
    finally:
        peer.shutdown()
    assert wait_for(lambda: seen == ["ok ", 1007])


def test_max_size_per_call(server_factory: Callable[..., simplews.Server]) -> None:
    def on_message(ws: simplews.Connection, message: Any) -> None:
        ws.send(b"x" * 5000 if message == "first" else b"y" * 5000)

    server = server_factory(on_message=on_message, max_message_size=None)
    with simplews.connect(server.url, max_message_size=100) as ws:
        results = [_stream_after(ws, "first", max_size=None), _stream_after(ws, "second", max_size=1000)]
    assert b"".join(results[0]) == b"x" * 5000  # beyond max_message_size
    assert isinstance(results[1], simplews.ConnectionClosedError) and results[1].code == 1009


def test_a_message_read_ahead_comes_whole_and_stopping_early_drops_the_rest(
    server_factory: Callable[..., simplews.Server],
) -> None:
    gate = threading.Event()

    def on_open(ws: simplews.Connection) -> None:
        ws.send("whole")
        gate.wait(10)
        ws.send(iter([b"a" * FRAME, b"b" * FRAME, b"c" * FRAME]))
        ws.send("next")

    server = server_factory(on_open=on_open, frame_size=FRAME)
    with simplews.connect(server.url) as ws:
        assert wait_for(lambda: len(ws._reader.queue) == 1)  # read ahead by the scheduler
        assert list(ws.recv_streaming(timeout=10)) == ["whole"]
        gate.set()
        stream = ws.recv_streaming(timeout=10)
        first = next(stream)
        assert first and first == b"a" * len(first)  # what has arrived of frame 1
        stream.close()  # give up on the rest of this message
        assert ws.recv(timeout=10) == "next"


def test_on_fragment_callbacks_get_large_messages_in_pieces(server_factory: Callable[..., simplews.Server]) -> None:
    log: List[Tuple[Any, bool]] = []
    server = server_factory(on_fragment=lambda ws, data, fin: log.append((data, fin)), max_message_size=100)
    with ws_connect(server.url, compression=None) as peer:
        peer.send(iter([b"p" * 3000, b"q" * 3000]))
        peer.send("small")
        assert wait_for(lambda: len(log) >= 2 and log[-1] == ("small", True))
    message = log[:-1]
    assert b"".join(data for data, _ in message) == b"p" * 3000 + b"q" * 3000  # 60 times max_message_size
    assert [fin for _, fin in message] == [False] * (len(message) - 1) + [True]


def test_client_on_fragment(server_factory: Callable[..., simplews.Server]) -> None:
    log: List[Tuple[Any, bool]] = []
    server = server_factory(on_open=lambda ws: ws.send(iter(["ab" * FRAME, "cd" * FRAME])), frame_size=FRAME)
    client = simplews.Client(server.url, on_fragment=lambda ws, data, fin: log.append((data, fin))).start()
    try:
        assert wait_for(lambda: log and log[-1][1], timeout=10)
    finally:
        client.stop(10)
    assert "".join(data for data, _ in log) == "ab" * FRAME + "cd" * FRAME and len(log) >= 4


def test_hooks_run_in_order_with_the_fragments(server_factory: Callable[..., simplews.Server]) -> None:
    log: List[Any] = []
    server = server_factory(
        on_fragment=lambda ws, data, fin: log.append((data, fin)), on_ping=lambda ws, payload: log.append(payload)
    )
    with ws_connect(server.url, compression=None, ping_interval=None) as peer:
        assert peer.ping(b"before").wait(5)  # arrives while the server waits for a fragment
        peer.send("message")
        assert wait_for(lambda: len(log) == 2)
        assert peer.ping(b"after").wait(5)
        assert wait_for(lambda: len(log) == 3)
    assert log == [b"before", ("message", True), b"after"]


def test_on_fragment_reads_ahead_in_fragments_while_the_callback_runs(server_factory: Callable[..., simplews.Server]) -> None:
    gate, entered = threading.Event(), threading.Event()
    log: List[Tuple[Any, bool]] = []

    def on_fragment(ws: simplews.Connection, data: Any, fin: bool) -> None:
        log.append((data, fin))
        if data == "first":
            entered.set()
            gate.wait(10)

    server = server_factory(on_fragment=on_fragment, max_message_size=100, ping_interval=None)
    try:
        with ws_connect(server.url, compression=None, ping_interval=None) as peer:
            peer.send("first")
            assert entered.wait(10)
            peer.send(b"z" * 5000)  # arrives while nobody receives: more than max_message_size
            (conn,) = server.connections
            assert wait_for(lambda: bool(conn._reader.fragments))  # read ahead as a fragment, not failed with 1009
            gate.set()
            assert wait_for(lambda: log and log[-1][1] and len(log) > 1)
            assert peer.ping().wait(5)  # still open
    finally:
        gate.set()
    assert b"".join(data for data, _ in log[1:]) == b"z" * 5000
