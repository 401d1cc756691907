"""Client with reconnect=True: backoff with jitter, on_open per connection, prompt stop."""

from __future__ import annotations

import logging
import socket
import ssl
import threading
from typing import Any, List

import pytest
from helpers import wait_for

import simplews

from .conftest import read_request


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _waits(caplog: pytest.LogCaptureFixture) -> List[float]:
    """The reconnection delays the client logged, in order."""
    return [r.args[0] for r in caplog.records if r.msg == "reconnecting in %.2f s"]  # type: ignore[index]


def test_on_open_runs_for_every_new_connection(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.close(1001, "go away"))
    opened: List[simplews.Connection] = []
    closed: List[int] = []
    client = simplews.Client(
        server.url,
        on_open=opened.append,
        on_close=lambda ws, code, reason: closed.append(code),
        reconnect=True,
        reconnect_delay=0.01,
        reconnect_max_delay=0.05,
    )
    with client:
        assert wait_for(lambda: len(opened) >= 3, timeout=20)
    assert len(set(map(id, opened))) == len(opened)  # a new connection each time
    assert len(closed) == len(opened) and set(closed) == {1001}
    assert client.connections_opened == len(opened)


def test_backoff_doubles_with_jitter_up_to_the_maximum(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simplews")
    errors: List[BaseException] = []
    client = simplews.Client(
        f"ws://127.0.0.1:{_dead_port()}/",
        on_error=lambda ws, exc: errors.append(exc),
        reconnect=True,
        reconnect_delay=0.02,
        reconnect_max_delay=0.16,
    )
    with client:
        assert wait_for(lambda: len(_waits(caplog)) >= 8, timeout=30)
    waits = _waits(caplog)[:8]
    for i, wait in enumerate(waits):
        nominal = min(0.02 * 2**i, 0.16)
        assert 0.5 * nominal - 0.005 <= wait <= min(1.5 * nominal, 0.16) + 0.005, (i, waits)
    assert len(set(waits)) > 1  # jittered, not a fixed schedule
    assert all(isinstance(e, simplews.ConnectionRefused) for e in errors) and len(errors) >= 8


def test_zero_delay_does_not_spin(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simplews")
    client = simplews.Client(
        f"ws://127.0.0.1:{_dead_port()}/", on_error=lambda ws, exc: None, reconnect=True, reconnect_delay=0
    )
    with client:
        assert wait_for(lambda: len(_waits(caplog)) >= 4, timeout=30)
    waits = _waits(caplog)[:4]
    assert all(w >= 0.01 for w in waits) and waits[-1] > waits[0], waits


def test_connection_that_drops_at_once_also_backs_off(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simplews")
    server = server_factory(on_open=lambda ws: ws.close(1011, "crash"))
    client = simplews.Client(server.url, reconnect=True, reconnect_delay=0.01, reconnect_max_delay=1.0)
    with client:
        assert wait_for(lambda: len(_waits(caplog)) >= 4, timeout=30)
    waits = _waits(caplog)[:4]
    assert waits[3] >= 0.5 * 0.08 - 0.005, waits  # the fourth wait is around 0.08 s, not 0.01 s


def test_handshake_rejection_4xx_stops_retrying(server_factory: Any) -> None:
    server = server_factory(process_request=lambda request: (403, [], "forbidden"))
    errors: List[BaseException] = []
    client = simplews.Client(server.url, on_error=lambda ws, exc: errors.append(exc), reconnect=True, reconnect_delay=0.01)
    client.start()
    assert wait_for(lambda: not client.running, timeout=10)
    client.stop()
    assert len(errors) == 1 and isinstance(errors[0], simplews.InvalidStatus) and errors[0].status == 403


def test_retry_on_rejection_keeps_trying(server_factory: Any) -> None:
    attempts: List[str] = []

    def reject(request: Any) -> Any:
        attempts.append(request.path)
        return (401, [], "log in first")

    server = server_factory(process_request=reject)
    client = simplews.Client(
        server.url, on_error=lambda ws, exc: None, reconnect=True, reconnect_delay=0.01, retry_on_rejection=True
    )
    with client:
        assert wait_for(lambda: len(attempts) >= 3, timeout=20)


def test_server_error_5xx_is_retried_and_recovers(server_factory: Any) -> None:
    answers = [(503, [], "busy"), (503, [], "busy")]
    server = server_factory(process_request=lambda request: answers.pop() if answers else None)
    opened = threading.Event()
    client = simplews.Client(
        server.url, on_open=lambda ws: opened.set(), on_error=lambda ws, exc: None, reconnect=True, reconnect_delay=0.01
    )
    with client:
        assert opened.wait(20)


def test_max_retries_bounds_consecutive_failures() -> None:
    errors: List[BaseException] = []
    client = simplews.Client(
        f"ws://127.0.0.1:{_dead_port()}/",
        on_error=lambda ws, exc: errors.append(exc),
        reconnect=True,
        reconnect_delay=0.01,
        max_retries=3,
    )
    client.start()
    assert wait_for(lambda: not client.running, timeout=20)
    client.stop()
    assert len(errors) == 4  # the first attempt and three retries


def test_reconnects_after_the_server_restarts(server_factory: Any) -> None:
    first = server_factory(on_message=lambda ws, m: ws.send(m))
    port = first.port
    opened: List[simplews.Connection] = []
    received: List[Any] = []
    client = simplews.Client(
        f"ws://127.0.0.1:{port}/",
        on_open=opened.append,
        on_message=lambda ws, m: received.append(m),
        on_error=lambda ws, exc: None,
        reconnect=True,
        reconnect_delay=0.05,
        reconnect_max_delay=0.2,
    )
    with client:
        assert wait_for(lambda: len(opened) == 1, timeout=10)
        first.shutdown()
        assert wait_for(lambda: client.ws is None, timeout=10)
        server_factory(on_message=lambda ws, m: ws.send(m), port=port)
        assert wait_for(lambda: len(opened) == 2, timeout=20)
        client.send("back")
        assert wait_for(lambda: received == ["back"], timeout=10)


def test_stop_during_the_backoff_wait_is_prompt() -> None:
    client = simplews.Client(
        f"ws://127.0.0.1:{_dead_port()}/", on_error=lambda ws, exc: None, reconnect=True, reconnect_delay=3600
    )
    client.start()
    assert wait_for(lambda: client.running, timeout=5)
    client.stop(timeout=10)
    assert not client.running


def test_stop_while_connected_closes_with_1000(echo_server: simplews.Server) -> None:
    closes: List[int] = []
    client = simplews.Client(echo_server.url, on_close=lambda ws, code, reason: closes.append(code), reconnect=True)
    client.start()
    assert wait_for(lambda: client.ws is not None, timeout=10)
    client.stop(timeout=10)
    assert not client.running and closes == [1000]


@pytest.mark.parametrize("secure", [False, True])
def test_stop_while_connecting_to_a_silent_server_is_prompt(raw_peer: Any, secure: bool, client_tls: ssl.SSLContext) -> None:
    got_request = threading.Event()

    def silent(conn: socket.socket) -> None:
        conn.recv(4096)  # the request, or the TLS ClientHello; never answered
        got_request.set()
        conn.recv(4096)

    peer = raw_peer(silent)
    scheme = "wss" if secure else "ws"
    errors: List[BaseException] = []
    client = simplews.Client(
        f"{scheme}://localhost:{peer.port}/",
        on_error=lambda ws, exc: errors.append(exc),
        reconnect=True,
        open_timeout=3600,
        ssl_context=client_tls,
    )
    client.start()
    assert got_request.wait(10)
    client.stop(timeout=10)
    assert not client.running, "stop() waited for open_timeout"
    assert errors == []  # an attempt aborted by stop() is not an error


def test_start_then_stop_at_once_does_not_hang(echo_server: simplews.Server) -> None:
    for _ in range(20):
        client = simplews.Client(echo_server.url, reconnect=True)
        client.start()
        client.stop(timeout=10)
        assert not client.running


def test_raw_request_reaches_server_with_user_agent(raw_peer: Any) -> None:
    requests: List[bytes] = []

    def record(conn: socket.socket) -> None:
        requests.append(read_request(conn))
        conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")

    peer = raw_peer(record)
    client = simplews.Client(f"ws://127.0.0.1:{peer.port}/", on_error=lambda ws, exc: None, reconnect=True)
    client.start()
    assert wait_for(lambda: not client.running, timeout=10)  # 404 is a rejection: no retry
    client.stop()
    assert len(requests) == 1 and b"\r\nUser-Agent: simplews/" in requests[0]


def test_stop_while_a_proxy_never_answers_connect_is_prompt(raw_peer: Any, echo_server: simplews.Server) -> None:
    got_connect = threading.Event()

    def silent_proxy(conn: socket.socket) -> None:
        read_request(conn)  # the CONNECT request, never answered
        got_connect.set()
        conn.recv(4096)

    peer = raw_peer(silent_proxy)
    client = simplews.Client(
        echo_server.url, proxy=f"http://127.0.0.1:{peer.port}", reconnect=True, open_timeout=3600
    )
    client.start()
    assert got_connect.wait(10)
    client.stop(timeout=10)
    assert not client.running


def test_keepalive_failure_leads_to_a_new_connection(raw_peer: Any) -> None:
    from .test_keepalive import black_hole

    peer = raw_peer(black_hole)
    opened: List[simplews.Connection] = []
    closes: List[int] = []
    client = simplews.Client(
        f"ws://127.0.0.1:{peer.port}/",
        on_open=opened.append,
        on_close=lambda ws, code, reason: closes.append(code),
        ping_interval=0.2,
        ping_timeout=0.2,
        close_timeout=1,  # stop() closes the last connection to the black hole: it never answers the close
        reconnect=True,
        reconnect_delay=0.05,
    )
    with client:
        assert wait_for(lambda: len(closes) >= 2 and len(opened) >= 3, timeout=20)
    assert closes[:2] == [1011, 1011]
