"""The opening handshake (RFC 6455 section 4) written by hand, against the server and the client."""

from __future__ import annotations

import socket
import threading
from typing import Iterator, List, Optional, Tuple

import pytest
from endpoints import BASE_OPTIONS, JOIN_TIMEOUT
from rawpeer import TEXT, client_handshake, header, http_exchange, read_http_head, request_bytes, server_handshake

import simplews

# --- server side ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[simplews.Server]:
    """One echo server for every bad client of this module: it must keep serving after each."""
    with simplews.serve(on_message=lambda ws, m: ws.send(m), port=0, **BASE_OPTIONS) as srv:
        yield srv


def _still_serves(server: simplews.Server) -> None:
    """A good raw client still gets its echo after the bad one."""
    peer = client_handshake(server.port)
    try:
        peer.send(TEXT, b"still there?")
        peer.expect_message(TEXT, b"still there?")
        peer.send_close(1000)
        peer.expect_close_frame(1000)
        peer.wait_eof()
    finally:
        peer.close()


def _expect_status(server: simplews.Server, request: bytes, status: int) -> List[Tuple[str, str]]:
    """Send a bad request; assert the status and that the server then closes the connection."""
    code, headers, sock = http_exchange(server.port, request)
    try:
        assert code == status, (code, headers)
        sock.settimeout(JOIN_TIMEOUT)
        while sock.recv(65536):  # the body, then the server's FIN
            pass
    finally:
        sock.close()
    _still_serves(server)
    return headers


BAD_KEYS = {
    "not-base64": "not base64 at all!!",
    "15-bytes": "AAAAAAAAAAAAAAAAAAAA",
    "17-bytes": "AAAAAAAAAAAAAAAAAAAAAAA=",
    "empty": "",
    "padding-only": "====",
}


def test_missing_key_400(server: simplews.Server) -> None:
    _expect_status(server, request_bytes(server.port, omit=("key",))[0], 400)


@pytest.mark.parametrize("key", BAD_KEYS.values(), ids=list(BAD_KEYS))
def test_malformed_key_400(server: simplews.Server, key: str) -> None:
    _expect_status(server, request_bytes(server.port, key=key)[0], 400)


@pytest.mark.parametrize("version", ["8", "12", "14", "0", "thirteen", "13, 8"])
def test_wrong_version_426(server: simplews.Server, version: str) -> None:
    headers = _expect_status(server, request_bytes(server.port, version=version)[0], 426)
    assert header(headers, "sec-websocket-version") == "13"


@pytest.mark.parametrize("method", ["POST", "PUT", "HEAD", "DELETE", "OPTIONS"])
def test_non_get_405(server: simplews.Server, method: str) -> None:
    headers = _expect_status(server, request_bytes(server.port, method=method)[0], 405)
    assert header(headers, "allow") == "GET"


@pytest.mark.parametrize(
    "upgrade, connection",
    [
        (None, "Upgrade"),
        ("h2c", "Upgrade"),
        ("websocket2", "Upgrade"),
        ("websocket", None),
        ("websocket", "keep-alive"),
        ("websocket", "Upgrades"),
        ("websocket", "close"),
    ],
)
def test_missing_upgrade_or_connection_token_400(server: simplews.Server, upgrade: Optional[str], connection: Optional[str]) -> None:
    _expect_status(server, request_bytes(server.port, upgrade=upgrade, connection=connection)[0], 400)


@pytest.mark.parametrize(
    "upgrade, connection",
    [
        ("WebSocket", "upgrade"),
        ("websocket", "keep-alive, Upgrade"),
        ("foo/1, WEBSOCKET", "UPGRADE,keep-alive"),
        ("websocket", "x , upgrade ,y"),
    ],
)
def test_tokens_matched_case_insensitively_in_lists(server: simplews.Server, upgrade: str, connection: str) -> None:
    request, _ = request_bytes(server.port, upgrade=upgrade, connection=connection)
    code, _, sock = http_exchange(server.port, request)
    sock.close()
    assert code == 101


def test_oversized_header_block_431(server: simplews.Server) -> None:
    filler = "".join(f"X-Filler-{i}: {'v' * 200}\r\n" for i in range(100))  # about 21 KiB
    _expect_status(server, request_bytes(server.port, extra=filler)[0], 431)


def test_garbage_request_400(server: simplews.Server) -> None:
    _expect_status(server, b"\x16\x03\x01 not http at all\r\n\r\n", 400)


def test_half_request_then_disconnect(server: simplews.Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
    _still_serves(server)


# --- client side ----------------------------------------------------------------------------------


def _run_client(response: bytes, **options: object) -> BaseException:
    """Let a simplews client handshake with a hand-made ``response``; return what it raised."""
    result: List[BaseException] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(JOIN_TIMEOUT)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/"
        opts = dict(BASE_OPTIONS, open_timeout=10)
        opts.update(options)

        def run() -> None:
            try:
                simplews.connect(url, **opts).close()  # type: ignore[arg-type]
            except BaseException as exc:
                result.append(exc)

        thread = threading.Thread(target=run, name="conformance-handshake-client")
        thread.start()
        sock, _ = listener.accept()
        try:
            peer, _ = server_handshake(sock, response=response)
            peer.sock.settimeout(JOIN_TIMEOUT)
            assert peer.sock.recv(65536) == b""  # the client drops the connection: nothing sent, no frame
        finally:
            sock.close()
            thread.join(JOIN_TIMEOUT)
    assert not thread.is_alive()
    assert result, "the client accepted a bad handshake"
    return result[0]


GOOD = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n"


@pytest.mark.parametrize("status", [200, 204, 302, 400, 403, 404, 426, 500, 503])
def test_client_fails_on_status_other_than_101(status: int) -> None:
    exc = _run_client(f"HTTP/1.1 {status} Nope\r\nContent-Length: 0\r\n\r\n".encode())
    assert isinstance(exc, simplews.InvalidStatus) and exc.status == status


@pytest.mark.parametrize(
    "accept",
    ["AAAAAAAAAAAAAAAAAAAAAAAAAAA=", "", "dGhlIHNhbXBsZSBub25jZQ==", "{accept}x"],
    ids=["other", "empty", "the-key-itself", "suffix"],
)
def test_client_fails_on_wrong_accept(accept: str) -> None:
    response = GOOD.replace(b"{accept}", accept.encode()) + b"\r\n"
    assert isinstance(_run_client(response), simplews.InvalidHeader)


def test_client_fails_on_missing_accept() -> None:
    response = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    assert isinstance(_run_client(response), simplews.InvalidHeader)


@pytest.mark.parametrize("line", [b"Upgrade: h2c", None], ids=["wrong-upgrade", "no-upgrade"])
def test_client_fails_on_bad_upgrade_header(line: Optional[bytes]) -> None:
    response = GOOD.replace(b"Upgrade: websocket", line or b"X-Nothing: 1")
    assert isinstance(_run_client(response + b"\r\n"), simplews.InvalidHeader)


@pytest.mark.parametrize("offered", [None, ["chat"]], ids=["none-offered", "other-offered"])
def test_client_fails_on_subprotocol_not_offered(offered: Optional[List[str]]) -> None:
    exc = _run_client(GOOD + b"Sec-WebSocket-Protocol: superchat\r\n\r\n", subprotocols=offered)
    assert isinstance(exc, simplews.NegotiationError)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_client_fails_on_extension_not_offered(compression: Optional[str]) -> None:
    exc = _run_client(GOOD + b"Sec-WebSocket-Extensions: x-webkit-unknown\r\n\r\n", compression=compression)
    assert isinstance(exc, simplews.NegotiationError)


def test_client_fails_on_deflate_it_did_not_offer() -> None:
    exc = _run_client(GOOD + b"Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n", compression=None)
    assert isinstance(exc, simplews.NegotiationError)


def test_client_accepts_offered_subprotocol_and_sends_a_proper_request() -> None:
    """The good path of the same hand-made server: the request is valid and the subprotocol is taken."""
    chosen: List[Optional[str]] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(JOIN_TIMEOUT)
        url = f"ws://127.0.0.1:{listener.getsockname()[1]}/chat?room=1"

        def run() -> None:
            with simplews.connect(url, subprotocols=["v1", "v2"], **BASE_OPTIONS) as ws:  # type: ignore[arg-type]
                chosen.append(ws.subprotocol)

        thread = threading.Thread(target=run, name="conformance-handshake-client")
        thread.start()
        sock, _ = listener.accept()
        peer, headers = server_handshake(sock, response=GOOD + b"Sec-WebSocket-Protocol: v2\r\n\r\n")
        try:
            assert header(headers, "upgrade") == "websocket" and header(headers, "host") == url.split("/")[2]
            assert "upgrade" in (header(headers, "connection") or "").lower()
            assert header(headers, "sec-websocket-protocol") == "v1, v2"
            peer.expect_close_frame(1000)
            peer.send_close(1000)
        finally:
            peer.close()
            thread.join(JOIN_TIMEOUT)
    assert chosen == ["v2"]


def test_read_http_head_helper_sanity() -> None:
    """The raw helpers themselves: a head split over writes is read whole."""
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"HTTP/1.1 101 X\r\nA: 1\r")
        a.sendall(b"\n\r\nrest")
        head, rest = read_http_head(b)
        assert head.endswith(b"\r\n\r\n") and rest == b"rest"
