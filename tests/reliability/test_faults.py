"""Fault injection over real sockets: each fault has one clear outcome, and
``on_close`` runs exactly once for every connection that opened."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any, Dict, List, Optional, Tuple

import pytest
import trustme
from helpers import wait_for
from rawpeers import RawServer, client_frame, raw_client, read_until_close, reset, server_frame

import simplews
from simplews import transport


class Recorder:
    """Callbacks that record what happened to each connection."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.messages: List[Any] = []
        self.closes: List[Tuple[int, str]] = []
        self.errors: List[BaseException] = []

    def on_message(self, ws: simplews.Connection, message: Any) -> None:
        with self.lock:
            self.messages.append(message)
        if message == "still here?":
            ws.send(message)

    def on_close(self, ws: Any, code: int, reason: str) -> None:
        with self.lock:
            self.closes.append((code, reason))

    def on_error(self, ws: Any, exc: BaseException) -> None:
        with self.lock:
            self.errors.append(exc)

    def callbacks(self) -> Dict[str, Any]:
        return {"on_message": self.on_message, "on_close": self.on_close, "on_error": self.on_error}


def echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


def assert_healthy(server: simplews.Server) -> None:
    """Another client is served normally: faults stay on their own connection."""
    with simplews.connect(server.url) as ws:
        ws.send("still here?")
        assert ws.recv(timeout=10) == "still here?"


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- the peer resets the TCP connection mid-frame ----------------------------------------------


def test_client_sees_reset_mid_frame_as_1006() -> None:
    rec = Recorder()
    with RawServer() as raw:
        accepted = raw.accept_in_thread()
        client = simplews.Client(raw.url, **rec.callbacks()).start()
        peer, _ = accepted.result()
        peer.sendall(server_frame(1, b"whole") + server_frame(2, b"x" * 1000)[:500])
        assert wait_for(lambda: rec.messages == ["whole"], 10)
        reset(peer)
        assert wait_for(lambda: rec.closes, 10)
        client.stop(10)
    assert rec.closes == [(1006, "")]
    assert not client.running


def test_server_sees_reset_mid_frame_as_1006(server_factory: Any) -> None:
    rec = Recorder()
    server = server_factory(**rec.callbacks())
    sock, _ = raw_client(server.url)
    sock.sendall(client_frame(1, b"whole") + client_frame(2, b"y" * 5000)[:3000])
    assert wait_for(lambda: rec.messages == ["whole"], 10)
    reset(sock)
    assert wait_for(lambda: rec.closes, 10)
    assert rec.closes == [(1006, "")] and rec.errors == []
    assert_healthy(server)
    assert wait_for(lambda: not server.connections, 10)


# --- the peer half-closes -------------------------------------------------------------------


def test_server_handles_half_close_as_1006_and_closes_tcp(server_factory: Any) -> None:
    rec = Recorder()
    server = server_factory(**rec.callbacks())
    sock, _ = raw_client(server.url)
    sock.sendall(client_frame(1, b"last words"))
    sock.shutdown(socket.SHUT_WR)
    assert wait_for(lambda: rec.closes, 10)
    assert rec.closes == [(1006, "")] and rec.messages == ["last words"]
    sock.settimeout(10)
    assert read_until_close(sock) == ([], None)  # the server closed TCP on its side too
    sock.close()
    assert_healthy(server)


def test_client_handles_half_close_as_1006() -> None:
    with RawServer() as raw:
        accepted = raw.accept_in_thread()
        ws = simplews.connect(raw.url)
        peer, _ = accepted.result()
        peer.sendall(server_frame(1, b"bye"))
        peer.shutdown(socket.SHUT_WR)
        assert ws.recv(timeout=10) == "bye"
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=10)
        assert info.value.code == 1006 and ws.closed
        ws.close()


# --- the peer stops reading while we send ---------------------------------------------------------


def test_server_send_timeout_aborts_only_the_stuck_connection(server_factory: Any) -> None:
    rec = Recorder()
    outcome: List[BaseException] = []

    def flood(ws: simplews.Connection) -> None:
        if ws.path != "/stuck":
            return
        try:
            for _ in range(10_000):  # far more than any socket buffer holds
                ws.send(b"z" * 65536)
        except simplews.WebSocketError as exc:
            outcome.append(exc)

    server = server_factory(on_open=flood, send_timeout=0.5, compression=None, on_message=echo, on_close=rec.on_close)
    stuck = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stuck.sendall(
        b"GET /stuck HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    assert_healthy(server)  # while the flood is blocked
    assert wait_for(lambda: outcome, 30)
    # the peer took nothing for send_timeout: the connection fails with 1011 and the send says so
    assert isinstance(outcome[0], simplews.ConnectionClosedError) and outcome[0].code == 1011, outcome
    assert wait_for(lambda: len(rec.closes) == 2, 10)  # the healthy client and the stuck one
    assert sorted(code for code, _ in rec.closes) == [1000, 1011]
    assert_healthy(server)
    stuck.close()


def test_client_send_timeout_bounds_a_blocked_send() -> None:
    with RawServer() as raw:
        accepted = raw.accept_in_thread(rcvbuf=4096)
        ws = simplews.connect(raw.url, send_timeout=0.5, compression=None)
        accepted.result()
        with pytest.raises(simplews.ConnectionClosedError) as info:
            for _ in range(10_000):
                ws.send(b"z" * 65536)
        assert info.value.code == 1011 and "send timed out" in info.value.reason
        assert ws.closed and ws.close_code == 1011
        with pytest.raises(simplews.ConnectionClosedError):
            ws.send("more")
        ws.close()  # idempotent, returns at once


def test_close_is_bounded_while_a_send_is_blocked_without_send_timeout() -> None:
    """Regression: close() waited forever for the write lock held by a blocked send."""
    with RawServer() as raw:
        accepted = raw.accept_in_thread(rcvbuf=4096)
        ws = simplews.connect(raw.url, close_timeout=0.5, compression=None)
        accepted.result()
        errors: List[BaseException] = []

        def sender() -> None:
            try:
                while True:
                    ws.send(b"z" * 65536)
            except simplews.WebSocketError as exc:
                errors.append(exc)

        thread = threading.Thread(target=sender)
        thread.start()
        assert wait_for(lambda: ws._writer.role.locked(), 10)
        closer = threading.Thread(target=ws.close)
        closer.start()
        closer.join(30)
        thread.join(30)
        assert not closer.is_alive() and not thread.is_alive()
        assert ws.closed and ws.close_code == 1006
        assert isinstance(errors[0], simplews.ConnectionClosedError)


# --- the peer never answers our close --------------------------------------------------------------


def test_client_close_without_answer_ends_after_close_timeout() -> None:
    with RawServer() as raw:
        accepted = raw.accept_in_thread()
        ws = simplews.connect(raw.url, close_timeout=0.5)
        peer, _ = accepted.result()
        ws.close(1000, "bye")
        assert ws.closed and ws.close_code == 1006
        peer.settimeout(10)
        messages, close = read_until_close(peer, is_client=False)
        assert close is not None and (close.code, close.reason) == (1000, "bye")


def test_server_close_without_answer_ends_after_close_timeout(server_factory: Any) -> None:
    rec = Recorder()

    def closer(ws: simplews.Connection, message: Any) -> None:
        ws.close(4000, "go away")

    server = server_factory(on_message=closer, on_close=rec.on_close, close_timeout=0.5)
    sock, _ = raw_client(server.url)
    sock.sendall(client_frame(1, b"close me"))
    messages, close = read_until_close(sock)
    assert close is not None and close.code == 4000
    assert wait_for(lambda: rec.closes, 10)
    assert rec.closes == [(1006, "")]  # we never answered the close frame
    assert read_until_close(sock) == ([], None)  # and the server dropped TCP
    sock.close()


# --- failures before a connection exists -------------------------------------------------------------


def client_outcome(url: str, **kwargs: Any) -> Recorder:
    """Run a callback client (no reconnect) to its end; return what its callbacks saw."""
    rec = Recorder()
    client = simplews.Client(url, **rec.callbacks(), **kwargs)
    client.run_forever()
    return rec


def test_connection_refused() -> None:
    url = f"ws://127.0.0.1:{unused_port()}/"
    with pytest.raises(simplews.ConnectionRefused):
        simplews.connect(url)
    rec = client_outcome(url)
    assert len(rec.errors) == 1 and isinstance(rec.errors[0], simplews.ConnectionRefused)
    assert rec.closes == []


def test_dns_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_such_host(*args: Any, **kwargs: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(transport.socket, "getaddrinfo", no_such_host)
    with pytest.raises(simplews.HostNotFound) as info:
        simplews.connect("ws://no-such-host.invalid/")
    assert "no-such-host.invalid" in str(info.value)
    rec = client_outcome("ws://no-such-host.invalid/")
    assert len(rec.errors) == 1 and isinstance(rec.errors[0], simplews.HostNotFound)


@pytest.fixture(scope="module")
def tls() -> Tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context trusting it."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return server_ctx, client_ctx


def test_tls_handshake_failures(server_factory: Any, tls: Tuple[ssl.SSLContext, ssl.SSLContext]) -> None:
    server_ctx, client_ctx = tls
    rec = Recorder()
    server = server_factory(on_message=echo, on_close=rec.on_close, ssl_context=server_ctx)
    # an untrusted certificate (certifi's CAs do not know ours)
    with pytest.raises(simplews.TLSError):
        simplews.connect(server.url)
    # a wrong host name
    with pytest.raises(simplews.TLSError):
        simplews.connect(server.url, ssl_context=client_ctx, server_hostname="example.com")
    # plain ws:// to a TLS server: the server's TLS handshake fails, the client gets a clear error
    with pytest.raises(simplews.WebSocketError):
        simplews.connect(server.url.replace("wss://", "ws://"), open_timeout=10)
    # through all that, a good client is served
    with simplews.connect(server.url, ssl_context=client_ctx) as ws:
        ws.send("tls ok")
        assert ws.recv(timeout=10) == "tls ok"
    assert wait_for(lambda: rec.closes == [(1000, "")], 10)
    rec = client_outcome(server.url)
    assert len(rec.errors) == 1 and isinstance(rec.errors[0], simplews.TLSError)


# --- a callback that raises in every slot ---------------------------------------------------------


class Raiser:
    """Every callback raises after recording that it ran."""

    def __init__(self, echo: bool = True) -> None:
        self.echo = echo
        self.calls: List[str] = []
        self.lock = threading.Lock()

    def _ran(self, name: str) -> None:
        with self.lock:
            self.calls.append(name)
        raise RuntimeError(f"{name} failed on purpose")

    def on_open(self, ws: Any) -> None:
        self._ran("open")

    def on_message(self, ws: Any, message: Any) -> None:
        if message == "echo" and self.echo:
            ws.send(message)
        self._ran("message")

    def on_close(self, ws: Any, code: int, reason: str) -> None:
        self._ran(f"close {code}")

    def on_error(self, ws: Any, exc: BaseException) -> None:
        self._ran("error")


def test_server_callbacks_that_raise_in_every_slot(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    raiser = Raiser()
    server = server_factory(raiser)
    with simplews.connect(server.url) as ws:
        ws.send("one")
        ws.send("echo")
        assert ws.recv(timeout=10) == "echo"  # the connection survives the raising callbacks
    assert ws.close_code == 1000
    assert wait_for(lambda: any(c.startswith("close") for c in raiser.calls), 10)
    assert wait_for(lambda: raiser.calls.count("error") == 4, 10)
    assert [c for c in raiser.calls if c != "error"] == ["open", "message", "message", "close 1000"]
    with simplews.connect(server.url) as ws:  # and the server goes on serving
        ws.send("echo")
        assert ws.recv(timeout=10) == "echo"


def test_handler_function_that_raises_closes_with_1011(server_factory: Optional[Any]) -> None:
    rec = Recorder()

    def handler(ws: simplews.Connection) -> None:
        ws.recv(timeout=10)
        raise RuntimeError("handler bug")

    server = server_factory(handler, on_close=rec.on_close, on_error=rec.on_error)
    with simplews.connect(server.url) as ws:
        ws.send("trigger")
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=10)
    assert info.value.code == 1011
    assert wait_for(lambda: rec.closes, 10)
    assert rec.closes == [(1011, "internal error")] and isinstance(rec.errors[0], RuntimeError)


def test_client_callbacks_that_raise_in_every_slot(echo_server: simplews.Server) -> None:
    raiser = Raiser(echo=False)
    client = simplews.Client(echo_server.url, raiser)
    client.start()
    assert wait_for(lambda: client.ws is not None, 10)
    client.send("echo")
    client.send("more")
    assert wait_for(lambda: raiser.calls.count("message") == 2, 10)  # the loop goes on after a raise
    client.stop(10)
    assert not client.running
    assert [c for c in raiser.calls if c.startswith("close")] == ["close 1000"]
    assert raiser.calls[0] == "open"
