"""End to end over real sockets: our client and server against each other and
against independent implementations (the ``websockets`` library's server and
the ``websocket-client`` library's client)."""

from __future__ import annotations

import os
import threading
from typing import Any, Iterator, List, Tuple

import pytest
import websocket  # websocket-client
from helpers import our_threads, wait_for
from websockets.sync.server import serve as ws_serve

import simplews

MESSAGES = ["hello", "héllo wörld ☃ \U0001f600", "", b"", b"\x00\x01\xfe\xff", os.urandom(4 * 1024 * 1024), "é" * 300_000]


@pytest.fixture
def peer_server() -> Iterator[str]:
    """The websockets library's (sync) echo server; yields its URL."""

    def echo(ws: Any) -> None:
        for message in ws:
            if message == "close-4001":
                ws.close(4001, "peer says bye")
                return
            ws.send(message)

    server = ws_serve(echo, "127.0.0.1", 0, max_size=None, compression=None)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
    server.shutdown()
    thread.join(10)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_our_client_our_server(echo_server: simplews.Server, compression: Any) -> None:
    with simplews.connect(echo_server.url, max_message_size=None, compression=compression, frame_size=100_000) as ws:
        for message in MESSAGES:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        assert ws.ping(b"are you there").wait(5)
    assert ws.closed and ws.close_code == 1000


def test_our_client_with_websockets_server(peer_server: str) -> None:
    with simplews.connect(peer_server, max_message_size=None, frame_size=64 * 1024) as ws:
        for message in MESSAGES:
            ws.send(message)
            assert ws.recv(timeout=10) == message
        assert ws.ping().wait(5)
        ws.send("close-4001")
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=10)
    assert info.value.code == 4001 and info.value.reason == "peer says bye"


def test_our_client_closes_websockets_server_with_code(peer_server: str) -> None:
    ws = simplews.connect(peer_server)
    ws.close(4321, "client reason")
    assert ws.closed and ws.close_code == 4321 and ws.close_reason == "client reason"


def test_websocket_client_with_our_server(echo_server: simplews.Server) -> None:
    ws = websocket.create_connection(echo_server.url, timeout=10)
    try:
        for message in MESSAGES:
            if isinstance(message, str):
                ws.send(message)
            else:
                ws.send_binary(message)
            assert ws.recv() == message
        ws.ping(b"hi")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG and frame.data == b"hi"
        # a fragmented message from websocket-client
        ws.send_frame(websocket.ABNF.create_frame("frag", websocket.ABNF.OPCODE_TEXT, 0))
        ws.send_frame(websocket.ABNF.create_frame("ment", websocket.ABNF.OPCODE_CONT, 0))
        ws.send_frame(websocket.ABNF.create_frame("ed", websocket.ABNF.OPCODE_CONT, 1))
        assert ws.recv() == "fragmented"
    finally:
        ws.close(status=4002, reason=b"wc bye")


def test_server_sees_close_code_from_websocket_client(server_factory: Any) -> None:
    closes: List[Tuple[int, str]] = []
    server = server_factory(on_close=lambda ws, code, reason: closes.append((code, reason)))
    ws = websocket.create_connection(server.url, timeout=10)
    ws.close(status=4003, reason=b"because")
    assert wait_for(lambda: closes == [(4003, "because")])


def test_server_closes_with_code_to_websocket_client(server_factory: Any) -> None:
    server = server_factory(on_message=lambda ws, m: ws.close(4004, "server says no"))
    ws = websocket.create_connection(server.url, timeout=10)
    ws.send("anything")
    with pytest.raises(websocket.WebSocketConnectionClosedException):
        while True:
            ws.recv()
    ws.close()


def test_fragmented_messages_from_our_server(server_factory: Any) -> None:
    """Our server fragments above frame_size; both peers reassemble."""
    big = "fragment me " * 10_000
    server = server_factory(on_open=lambda ws: ws.send(big), frame_size=1000)
    with simplews.connect(server.url) as ws:
        assert ws.recv(timeout=10) == big
    wc = websocket.create_connection(server.url, timeout=10)
    assert wc.recv() == big
    wc.close()


def test_handler_function_style(server_factory: Any) -> None:
    def handler(ws: simplews.Connection) -> None:
        for message in ws:
            ws.send(f"{ws.request.path}:{message}")

    server = server_factory(handler)
    with simplews.connect(server.url + "room?x=1") as ws:
        ws.send("a")
        assert ws.recv(timeout=5) == "/room?x=1:a"


def test_handler_object_and_class_styles(server_factory: Any) -> None:
    class Counter:
        def __init__(self) -> None:
            self.count = 0

        def on_message(self, ws: simplews.Connection, message: Any) -> None:
            self.count += 1
            ws.send(str(self.count))

    per_connection = server_factory(Counter)
    shared = server_factory(Counter())
    for server, expected in ((per_connection, ["1", "1"]), (shared, ["1", "2"])):
        got = []
        for _ in range(2):
            with simplews.connect(server.url) as ws:
                ws.send("x")
                got.append(ws.recv(timeout=5))
        assert got == expected


def test_callback_client_reconnects_and_stops(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.close(1000))
    opened: List[Any] = []
    closed: List[int] = []
    client = simplews.Client(
        server.url,
        on_open=lambda ws: opened.append(ws),
        on_close=lambda ws, code, reason: closed.append(code),
        reconnect=True,
        reconnect_delay=0.01,
        reconnect_max_delay=0.05,
    )
    client.start()
    assert wait_for(lambda: len(opened) >= 3, timeout=10)
    client.stop(timeout=10)
    assert not client.running
    assert len(closed) == len(opened) and all(code == 1000 for code in closed)


def test_callback_client_echo_and_errors(echo_server: simplews.Server) -> None:
    got: List[Any] = []
    errors: List[BaseException] = []
    events = []

    def on_message(ws: simplews.Connection, message: Any) -> None:
        got.append(message)
        if message == "boom":
            raise RuntimeError("callback failed")
        if len(got) == 2:
            ws.close(1000, "done")

    client = simplews.Client(
        echo_server.url,
        on_open=lambda ws: (ws.send("boom"), ws.send("second")),
        on_message=on_message,
        on_error=lambda ws, exc: errors.append(exc),
        on_close=lambda ws, code, reason: events.append((code, reason)),
    )
    client.run_forever()
    assert got == ["boom", "second"]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert events == [(1000, "done")]


def test_no_threads_left_after_close_and_shutdown() -> None:
    before = set(our_threads())
    server = simplews.serve(on_message=lambda ws, m: ws.send(m), port=0)
    clients = [simplews.connect(server.url) for _ in range(5)]
    for ws in clients:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    clients[0].close()
    server.shutdown()
    for ws in clients[1:]:
        with pytest.raises(simplews.ConnectionClosedOK) as info:
            ws.recv(timeout=10)
        assert info.value.code == 1001
    assert all(ws.closed for ws in clients)
    # closed by the server: the scheduler thread that saw it ends right after
    assert wait_for(lambda: set(our_threads()) - before == set(), 5), set(our_threads()) - before


def test_concurrent_senders_never_interleave(echo_server: simplews.Server) -> None:
    with simplews.connect(echo_server.url, max_message_size=None, frame_size=4096) as ws:
        def sender(tag: str) -> None:
            for i in range(20):
                ws.send(f"{tag}{i}:" + tag * 20_000)

        threads = [threading.Thread(target=sender, args=(t,)) for t in "abcd"]
        for t in threads:
            t.start()
        received = [ws.recv(timeout=20) for _ in range(80)]
        for t in threads:
            t.join(10)
    for message in received:
        tag = message[0]
        assert message.split(":", 1)[1] == tag * 20_000
    for tag in "abcd":
        assert [m.split(":")[0] for m in received if m[0] == tag] == [f"{tag}{i}" for i in range(20)]
