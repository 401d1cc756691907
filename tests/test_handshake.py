"""RFC 6455 section 4: building and checking the opening handshake."""

from __future__ import annotations

import base64

import pytest

from simplews import handshake
from simplews.exceptions import InvalidHandshake, InvalidHeader, InvalidStatus, LocalProtocolError, NegotiationError
from simplews.handshake import Headers


def test_accept_key_rfc_section_1_3() -> None:
    assert handshake.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_generated_keys_are_random_16_bytes() -> None:
    keys = {handshake.generate_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(base64.b64decode(k)) == 16 for k in keys)


def make_request(**overrides: str) -> bytes:
    headers = {
        "Host": "example.com",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    method = overrides.pop("method", "GET")
    for name, value in overrides.items():
        name = name.replace("_", "-")
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    return f"{method} /chat?x=1 HTTP/1.1\r\n{lines}\r\n".encode()


def test_client_request_round_trips_through_server_checks() -> None:
    key = handshake.generate_key()
    raw = handshake.build_request(
        "example.com:8080", "/chat?room=1", key, subprotocols=["chat", "superchat"], origin="http://o.example",
        user_agent="ua/1", extra_headers=[("X-A", "1"), ("X-A", "2")],
    )
    request = handshake.parse_request(raw)
    assert request.path == "/chat?room=1" and request.path_only == "/chat"
    assert request.query == {"room": ["1"]}
    assert request.headers.get_all("x-a") == ["1", "2"]
    assert handshake.check_request(request) == key
    assert handshake.parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol")) == ["chat", "superchat"]


def test_server_response_round_trips_through_client_checks() -> None:
    key = handshake.generate_key()
    raw = handshake.build_accept(key, subprotocol="chat")
    response = handshake.parse_response(raw)
    assert response.status == 101
    assert handshake.check_response(response, key, subprotocols=["chat"]) == "chat"


@pytest.mark.parametrize(
    "overrides, status",
    [
        ({"method": "POST"}, 405),
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Version": None}, 426),
        ({"Upgrade": None, "Sec-WebSocket-Key": None, "Connection": None}, 426),
        ({"Upgrade": None}, 400),
        ({"Upgrade": "h2c"}, 400),
        ({"Connection": "keep-alive"}, 400),
        ({"Sec-WebSocket-Key": None}, 400),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!!!"}, 400),
        ({"Host": None}, 400),
    ],
)
def test_bad_requests_get_the_right_status(overrides: dict, status: int) -> None:
    request = handshake.parse_request(make_request(**overrides))
    with pytest.raises(InvalidHandshake) as info:
        handshake.check_request(request)
    assert info.value.status == status


def test_tokens_match_case_insensitively_inside_lists() -> None:
    request = handshake.parse_request(make_request(Upgrade="WebSocket", Connection="keep-alive, UPGRADE"))
    assert handshake.check_request(request)


def test_reject_response_for_426_names_version_13() -> None:
    raw = handshake.build_reject(InvalidHandshake("no", status=426))
    response = handshake.parse_response(raw[: raw.index(b"\r\n\r\n") + 4])
    assert response.status == 426
    assert response.headers["Sec-WebSocket-Version"] == "13"


def test_head_size_limit() -> None:
    assert handshake.find_head_end(b"GET / HTTP/1.1\r\n\r\nrest") == 18
    assert handshake.find_head_end(b"GET / HTTP/1.1\r\nX: y") == -1
    with pytest.raises(InvalidHandshake) as info:
        handshake.find_head_end(b"x" * 100, max_size=50)
    assert info.value.status == 431


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET / HTTP/1.1\r\n: empty\r\n\r\n",
        b"GET /\r\n\r\n",
        b"GET / HTTP/1.0\r\nHost: x\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_malformed_requests(head: bytes) -> None:
    with pytest.raises(InvalidHandshake):
        handshake.parse_request(head)


def test_client_rejects_bad_responses() -> None:
    key = handshake.generate_key()
    with pytest.raises(InvalidStatus) as info:
        handshake.check_response(handshake.parse_response(b"HTTP/1.1 403 Forbidden\r\n\r\n"), key)
    assert info.value.status == 403
    wrong = handshake.parse_response(handshake.build_accept(handshake.generate_key()))
    with pytest.raises(InvalidHeader):
        handshake.check_response(wrong, key)
    chosen = handshake.parse_response(handshake.build_accept(key, subprotocol="other"))
    with pytest.raises(NegotiationError):
        handshake.check_response(chosen, key, subprotocols=["chat"])
    with pytest.raises(NegotiationError):
        handshake.check_response(chosen, key)


@pytest.mark.parametrize("value", ["a\r\nInjected: 1", "a\nb", "a\x00"])
def test_header_injection_is_refused(value: str) -> None:
    with pytest.raises(LocalProtocolError):
        Headers([("X-Test", value)])
    with pytest.raises(LocalProtocolError):
        handshake.build_request("h", "/", handshake.generate_key(), extra_headers={"X": value})
    with pytest.raises(LocalProtocolError):
        handshake.build_request("h", "/", handshake.generate_key(), subprotocols=[value])


def test_headers_are_case_insensitive_and_ordered() -> None:
    headers = Headers({"Content-Type": "text/plain"})
    headers.add("set-cookie", "a")
    headers.add("Set-Cookie", "b")
    assert headers["content-type"] == "text/plain"
    assert headers.get_all("SET-COOKIE") == ["a", "b"]
    assert "Set-Cookie" in headers and "Missing" not in headers
    assert len(headers) == 3


def test_headers_repr_hides_credentials() -> None:
    headers = Headers([("Authorization", "Basic c2VjcmV0"), ("Cookie", "sid=1"), ("X-Trace", "visible")])
    text = repr(headers)
    assert "c2VjcmV0" not in text and "sid=1" not in text and "visible" in text
    assert headers["Authorization"] == "Basic c2VjcmV0"


def test_headers_repr_redacts_a_redirect_target() -> None:
    headers = Headers([("Location", "wss://u:pw@example.com/next?token=abc"), ("X-Trace", "/a?b=c")])
    assert repr(headers) == "Headers([('Location', 'wss://***@example.com/next?token=***'), ('X-Trace', '/a?b=c')])"
    assert headers["Location"] == "wss://u:pw@example.com/next?token=abc"


@pytest.mark.parametrize(
    "text, shown",
    [
        ("/feed", "/feed"),
        ("/feed?token=abc&room=1", "/feed?token=***&room=***"),
        ("/feed?token=&flag&&x=a=b", "/feed?token=&***&&x=***"),  # empty values say so; bare names are masked
        ("ws://user:pw@host:8000/?k=v#frag", "ws://***@host:8000/?k=***#***"),
        ("ws://user:p@ss@host/", "ws://***@host/"),  # the last @ ends the user info
        ("ws://host/users/@me", "ws://host/users/@me"),
        ("GET /x?token=abc HTTP/1.1 extra", "GET /x?token=*** HTTP/1.1 extra"),  # a request line
    ],
)
def test_redact_url(text: str, shown: str) -> None:
    assert handshake.redact_url(text) == shown


def test_request_repr_redacts_the_query_but_path_stays_real() -> None:
    request = handshake.parse_request(b"GET /chat?token=abc HTTP/1.1\r\nHost: x\r\nCookie: sid=1\r\n\r\n")
    assert request.path == "/chat?token=abc" and request.query == {"token": ["abc"]}
    assert "abc" not in repr(request) and "sid=1" not in repr(request)
    assert repr(request).startswith("Request(path='/chat?token=***', headers=Headers([('Host', 'x'), ('Cookie', '***')])")


@pytest.mark.parametrize(
    "line, message",
    [(b"Authorization Bearer abc", "malformed header line 2 (no colon)"), (b"Bad Name: abc", "malformed header name b'Bad Name'")],
)
def test_malformed_header_errors_do_not_quote_values(line: bytes, message: str) -> None:
    with pytest.raises(InvalidHeader) as info:
        handshake.parse_request(b"GET / HTTP/1.1\r\nHost: x\r\n" + line + b"\r\n\r\n")
    assert str(info.value) == message
