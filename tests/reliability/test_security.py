"""Security basics: random keys, no header injection, no credentials in logs or errors."""

from __future__ import annotations

import base64
import logging
import os
import socket
from typing import Any, Iterator, List

import pytest
from helpers import wait_for
from rawpeers import RawServer, read_head

import simplews
from simplews import handshake
from simplews.client import parse_uri
from simplews.protocol import Protocol

PASSWORD = "pa55-w0rd-XYZZY"
TOKEN = "tok-3f9a1c-SECRET"
#: a token in a query string, a Cookie or a bad request line
URL_TOKEN = "utok-4b7e-SECRET"


# --- randomness ---------------------------------------------------------------------------


def test_handshake_and_mask_keys_come_from_the_os_csprng(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: List[int] = []
    real = os.urandom

    def recording(n: int) -> bytes:
        calls.append(n)
        return real(n)

    monkeypatch.setattr(os, "urandom", recording)
    key = handshake.generate_key()
    assert calls == [16] and len(base64.b64decode(key)) == 16
    client = Protocol(True)
    frames = [client.send_message("masked")[0] for _ in range(300)]
    # mask keys come from a pool refilled by os.urandom(1024): 256 keys per call
    assert calls == [16, 1024, 1024]
    keys = [frame[2:6] for frame in frames]
    assert len(set(keys)) == len(keys)


def test_handshake_keys_on_the_wire_are_fresh_and_16_bytes() -> None:
    with RawServer() as raw:
        for _ in range(20):
            accepted = raw.accept_in_thread()
            with simplews.connect(raw.url, close_timeout=0.1):
                accepted.result()
        keys = raw.keys
    assert len(keys) == 20 and len(set(keys)) == 20
    assert all(len(base64.b64decode(k, validate=True)) == 16 for k in keys)


# --- header injection -----------------------------------------------------------------------


def exchange(port: int, request: bytes) -> bytes:
    """Send one raw request; return all the server answers until it closes."""
    data = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(4096):
                data += chunk
        except ConnectionResetError:
            pass
    return data



@pytest.fixture
def seen(server_factory: Any) -> Iterator[Any]:
    """A server that records every request head it receives."""
    requests: List[Any] = []

    def record(request: Any) -> None:
        requests.append(request)
        return None

    server = server_factory(on_message=lambda ws, m: ws.send(m), process_request=record)
    server.requests = requests
    yield server


@pytest.mark.parametrize(
    "options",
    [
        {"headers": {"X-Test": "a\r\nX-Injected: 1"}},
        {"headers": {"X-Test": "a\nX-Injected: 1"}},
        {"headers": {"X-Test": "a\rX-Injected: 1"}},
        {"headers": {"X-Test\r\nX-Injected": "1"}},
        {"headers": {"X-Test: 1\r\nX-Injected": "1"}},
        {"headers": [("X Test", "1")]},
        {"subprotocols": ["chat\r\nX-Injected: 1"]},
        {"subprotocols": ["chat, X-Injected"]},
        {"origin": "http://a\r\nX-Injected: 1"},
        {"user_agent": "ua\r\nX-Injected: 1"},
    ],
)
def test_cr_lf_in_user_supplied_handshake_fields_is_refused(seen: Any, options: Any) -> None:
    with pytest.raises(simplews.LocalProtocolError):
        simplews.connect(seen.url, **options)
    assert seen.requests == []  # nothing was sent


@pytest.mark.parametrize("url_suffix", ["a\r\nX-Injected: 1", "a b", "a\x00"])
def test_cr_lf_in_the_url_is_refused(seen: Any, url_suffix: str) -> None:
    with pytest.raises(simplews.InvalidURI):
        simplews.connect(seen.url + url_suffix)
    assert seen.requests == []


def test_server_answers_cannot_be_injected(server_factory: Any) -> None:
    answers = iter(
        [
            (200, {"X-Test": "a\r\nX-Injected: 1"}, "body"),
            simplews.Response(200, handshake.Headers(), b"body", reason="OK\r\nX-Injected: 1"),
        ]
    )
    server = server_factory(process_request=lambda request: next(answers))
    for _ in range(2):
        assert b"X-Injected" not in exchange(server.port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    with pytest.raises(simplews.LocalProtocolError):
        handshake.build_response(200, {"X-Test": "a\r\nX-Injected: 1"})


def test_peer_close_reason_with_cr_lf_cannot_forge_log_lines(server_factory: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    server = server_factory(on_message=lambda ws, m: ws.close(4000, "bye\r\nFORGED log line"))
    with simplews.connect(server.url) as ws:
        ws.send("x")
        with pytest.raises(simplews.ConnectionClosedError) as info:
            ws.recv(timeout=10)
    assert info.value.reason == "bye\r\nFORGED log line"  # delivered as data, unchanged
    for record in caplog.records:
        assert "\n" not in record.getMessage(), record.getMessage()


# --- credentials --------------------------------------------------------------------------------


def leaks(text: str) -> bool:
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    return any(secret in text for secret in (PASSWORD, TOKEN, URL_TOKEN, basic))


def all_text(exc: BaseException) -> str:
    """The messages and reprs of an exception and everything chained to it."""
    parts = []
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        parts += [str(exc), repr(exc), repr(getattr(exc, "args", ""))]
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return "\n".join(parts)


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, simplews's included, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="simplews")
    return caplog


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """The records as a handler writes them: message, traceback and stack."""
    return "\n".join(caplog.handler.format(record) for record in caplog.records)


def assert_no_secret_logged(caplog: pytest.LogCaptureFixture) -> None:
    for record in caplog.records:
        text = caplog.handler.format(record)
        assert not leaks(text), text


def test_credentials_stay_out_of_logs_and_errors_on_rejection(server_factory: Any, logs: pytest.LogCaptureFixture) -> None:
    seen: List[Any] = []

    def reject(request: Any) -> Any:
        seen.append(request)
        return (401, [("WWW-Authenticate", "Basic")], "who are you?")

    server = server_factory(process_request=reject)
    port = server.port
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(f"ws://alice:{PASSWORD}@127.0.0.1:{port}/")
    assert not leaks(all_text(info.value))
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(f"ws://127.0.0.1:{port}/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert not leaks(all_text(info.value))
    # the credentials did reach the server, as they should
    assert seen[0].headers["Authorization"].startswith("Basic ") and seen[1].headers["Authorization"] == f"Bearer {TOKEN}"
    assert_no_secret_logged(logs)


def test_credentials_stay_out_of_logs_and_errors_on_success_and_failures(server_factory: Any, logs: pytest.LogCaptureFixture) -> None:
    server = server_factory(on_message=lambda ws, m: ws.send(m))
    url = f"ws://alice:{PASSWORD}@127.0.0.1:{server.port}/"
    with simplews.connect(url, headers={"X-Api-Key": "x"}) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        assert not leaks(repr(ws)) and not leaks(str(ws.request)) and not leaks(repr(parse_uri(url)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    for bad_url, error in [
        (f"ws://alice:{PASSWORD}@127.0.0.1:{closed_port}/", simplews.ConnectionRefused),
        (f"ws://alice:{PASSWORD}@127.0.0.1:notaport/", simplews.InvalidURI),
        (f"http://alice:{PASSWORD}@127.0.0.1/", simplews.InvalidURI),
        (f"ws://alice:{PASSWORD}@127.0.0.1/#frag", simplews.InvalidURI),
        (f"ws://alice:{PASSWORD}@/", simplews.InvalidURI),
    ]:
        with pytest.raises(error) as info:
            simplews.connect(bad_url, open_timeout=10)
        assert not leaks(all_text(info.value)), all_text(info.value)
    # a callback client reports the failure without the password too
    client = simplews.Client(f"ws://alice:{PASSWORD}@127.0.0.1:{closed_port}/")
    client.run_forever()
    assert_no_secret_logged(logs)


def test_server_logs_no_authorization_header(server_factory: Any, logs: pytest.LogCaptureFixture) -> None:
    server = server_factory(on_message=lambda ws, m: ws.send(m))
    # accepted, and refused for a missing Sec-WebSocket-Key
    for extra in (b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n", b""):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            + extra
            + f"Authorization: Bearer {TOKEN}\r\nCookie: sid={URL_TOKEN}\r\n\r\n".encode()
        )
        read_head(sock)
        sock.close()
    assert_no_secret_logged(logs)


# --- tokens in request targets and bad request heads (server side) ------------------------------

_KEY = b"Sec-WebSocket-Key: MDEyMzQ1Njc4OWFiY2RlZg==\r\n"


def _head(start: str, *lines: bytes) -> bytes:
    """A request head: ``start`` line, the upgrade headers, then ``lines``."""
    return (
        start.encode("latin-1")
        + b"\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        + b"".join(lines)
        + b"\r\n"
    )


_T = URL_TOKEN.encode()
#: (request head, status answered): each fails its handshake with the token somewhere in it
BAD_REQUESTS = [
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1 extra", _KEY), 400),  # malformed request line
    (_head(f"GET /feed?token={URL_TOKEN}#frag HTTP/2.0", _KEY), 505),
    (_head(f"GET /feed?token={URL_TOKEN}\xff HTTP/1.1", _KEY), 400),  # not ASCII
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1", _KEY, b"Authorization Bearer " + _T + b"\r\n"), 400),  # no colon
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1", _KEY, b"X-Token=" + _T + b"\r\n"), 400),
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1", _KEY, b"Bad Name: " + _T + b"\r\n"), 400),
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1", _KEY, b"Cookie: sid=" + _T + b"\x00\r\n"), 400),
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1"), 400),  # no Sec-WebSocket-Key
    (_head(f"GET /feed?token={URL_TOKEN} HTTP/1.1", _KEY, b"Origin: http://evil/?token=" + _T + b"\r\n"), 403),
    (_head(f"GET /boom?token={URL_TOKEN} HTTP/1.1", _KEY), 500),  # process_request raises
    (_head(f"GET /sub?token={URL_TOKEN} HTTP/1.1", _KEY), 500),  # select_subprotocol raises
]


def test_tokens_in_failed_handshakes_stay_out_of_logs_and_answers(server_factory: Any, logs: pytest.LogCaptureFixture) -> None:
    def process_request(request: Any) -> Any:
        if request.path_only == "/boom":
            raise RuntimeError("a bug in process_request")
        return None

    def select_subprotocol(request: Any, offered: List[str]) -> Any:
        if request.path_only == "/sub":
            raise RuntimeError("a bug in select_subprotocol")
        return None

    server = server_factory(
        process_request=process_request, select_subprotocol=select_subprotocol, origins=[None, "http://ok"]
    )
    for request, status in BAD_REQUESTS:
        answer = exchange(server.port, request)
        assert answer.startswith(f"HTTP/1.1 {status} ".encode()), (request, answer)
        assert not leaks(answer.decode("latin-1")), answer  # the error page quotes no token either
    # the failures were logged (before each answer), with the request shown masked
    text = logged(logs)
    assert text.count("handshake with") == len(BAD_REQUESTS)
    assert "malformed request line 'GET /feed?token=*** HTTP/1.1 extra'" in text
    assert "process_request failed for GET /boom?token=***" in text
    assert "select_subprotocol failed for /sub?token=***" in text
    assert "RuntimeError: a bug in process_request" in text  # the tracebacks were formatted, and checked
    assert_no_secret_logged(logs)


def test_tokens_in_request_targets_stay_out_of_logs_and_reprs(server_factory: Any, logs: pytest.LogCaptureFixture) -> None:
    requests: List[Any] = []

    def process_request(request: Any) -> Any:
        requests.append(request)
        return (403, [], "no") if request.path_only == "/deny" else None

    server = server_factory(on_message=lambda ws, m: ws.send(m), process_request=process_request)
    target = f"/feed?token={URL_TOKEN}&room=1&flag&empty="
    with simplews.connect(server.url.rstrip("/") + target, headers={"Cookie": f"sid={URL_TOKEN}"}) as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        assert ws.request.path == target and not leaks(repr(ws.request))
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(f"{server.url}deny?token={URL_TOKEN}")
    assert not leaks(all_text(info.value)) and not leaks(repr(info.value.response))
    assert requests[0].path == target  # applications see the real path
    assert not any(leaks(repr(r)) or leaks(str(r)) for r in requests)
    # the server logs its answers after sending them: wait for both
    shown = "/feed?token=***&room=***&***&empty="
    assert wait_for(lambda: f"upgraded {shown}" in logged(logs) and "GET /deny?token=*** -> 403" in logged(logs))
    assert f"connected to {server.url.rstrip('/')}{shown}" in logged(logs)
    assert_no_secret_logged(logs)
