"""URLs: schemes, default ports, IPv6 literals, path and query, credentials, bad URLs."""

from __future__ import annotations

import base64
import socket
from typing import Any, Dict, Iterator, List

import pytest

import simplews
from simplews.client import parse_uri


@pytest.fixture
def recording_server() -> Iterator[Any]:
    """A server that records each request's path and headers, and echoes."""
    seen: List[Dict[str, Any]] = []

    def on_open(ws: simplews.Connection) -> None:
        seen.append({"path": ws.path, "headers": ws.headers})

    with simplews.serve(on_open=on_open, on_message=lambda ws, m: ws.send(m), port=0) as server:
        server.seen = seen
        yield server


@pytest.mark.parametrize(
    "url, secure, host, port, resource, host_header",
    [
        ("ws://example.com", False, "example.com", 80, "/", "example.com"),
        ("wss://example.com", True, "example.com", 443, "/", "example.com"),
        ("WS://Example.COM:80/", False, "example.com", 80, "/", "example.com"),
        ("wss://example.com:443/a", True, "example.com", 443, "/a", "example.com"),
        ("ws://example.com:8080/a/b?x=1&y=%20", False, "example.com", 8080, "/a/b?x=1&y=%20", "example.com:8080"),
        ("wss://example.com:80/", True, "example.com", 80, "/", "example.com:80"),
        ("ws://[::1]:8765/", False, "::1", 8765, "/", "[::1]:8765"),
        ("wss://[2001:db8::1]/feed", True, "2001:db8::1", 443, "/feed", "[2001:db8::1]"),
        ("ws://127.0.0.1:9/?q", False, "127.0.0.1", 9, "/?q", "127.0.0.1:9"),
    ],
)
def test_parse(url: str, secure: bool, host: str, port: int, resource: str, host_header: str) -> None:
    uri = parse_uri(url)
    assert (uri.secure, uri.host, uri.port, uri.resource, uri.host_header) == (secure, host, port, resource, host_header)


def test_credentials_are_decoded_and_not_shown() -> None:
    uri = parse_uri("wss://al%40ice:p%3Ass@example.com/")
    assert (uri.username, uri.password) == ("al@ice", "p:ss")
    assert "p:ss" not in str(uri) and "p%3Ass" not in str(uri) and "ice" not in repr(str(uri))


@pytest.mark.parametrize(
    "url, fragment",
    [
        ("http://example.com/", "not a WebSocket URL"),
        ("https://example.com/", "not a WebSocket URL"),
        ("example.com:80", "not a WebSocket URL"),
        ("ws://", "no host"),
        ("ws:///path", "no host"),
        ("ws://example.com:abc/", "not a valid URL"),
        ("ws://example.com:70000/", "not a valid URL"),
        ("ws://example.com:0/", "port 0"),
        ("ws://[::1/", "not a valid URL"),
        ("ws://example.com/#frag", "fragment"),
        ("ws://example.com/a b", "whitespace"),
        ("ws://exa mple.com/", "whitespace"),
    ],
)
def test_bad_urls_fail_before_any_network_call(url: str, fragment: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("network used for a bad URL")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    with pytest.raises(simplews.InvalidURI) as info:
        simplews.connect(url)
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError) and isinstance(info.value, simplews.WebSocketError)
    with pytest.raises(simplews.InvalidURI):
        simplews.Client(url)


def test_bad_url_error_hides_the_password() -> None:
    with pytest.raises(simplews.InvalidURI) as info:
        simplews.connect("ws://user:s3cr3t@example.com:notaport/")
    assert "s3cr3t" not in str(info.value) and "***@example.com" in str(info.value)
    with pytest.raises(simplews.InvalidURI) as info:
        simplews.connect("http://user:s3cr3t@example.com/")
    assert "s3cr3t" not in str(info.value)


def test_non_string_url() -> None:
    with pytest.raises(simplews.InvalidURI):
        simplews.connect(b"ws://example.com/")  # type: ignore[arg-type]


def test_path_and_query_reach_the_server(recording_server: Any) -> None:
    url = f"ws://127.0.0.1:{recording_server.port}/sensors/42?unit=C&since=2024-01-01T00%3A00"
    with simplews.connect(url) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    assert recording_server.seen[0]["path"] == "/sensors/42?unit=C&since=2024-01-01T00%3A00"
    assert recording_server.seen[0]["headers"]["Host"] == f"127.0.0.1:{recording_server.port}"


def test_url_credentials_become_basic_auth(recording_server: Any) -> None:
    url = f"ws://sensor%2F7:pa%3Ass%40word@127.0.0.1:{recording_server.port}/"
    with simplews.connect(url) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    auth = recording_server.seen[0]["headers"]["Authorization"]
    assert auth == "Basic " + base64.b64encode(b"sensor/7:pa:ss@word").decode()


def test_explicit_authorization_header_wins_over_url_credentials(recording_server: Any) -> None:
    url = f"ws://user:pw@127.0.0.1:{recording_server.port}/"
    with simplews.connect(url, headers={"authorization": "Bearer token"}):
        pass
    assert recording_server.seen[0]["headers"].get_all("Authorization") == ["Bearer token"]


def test_no_credentials_no_authorization(recording_server: Any) -> None:
    with simplews.connect(recording_server.url):
        pass
    assert "Authorization" not in recording_server.seen[0]["headers"]


def test_ipv6_literal_url_over_a_real_socket() -> None:
    try:
        server = simplews.serve(on_message=lambda ws, m: ws.send(m), host="::1", port=0)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    seen: List[str] = []
    server.process_request = lambda request: seen.append(request.headers["Host"])  # type: ignore[assignment,func-returns-value]
    port = server.port
    with server:
        with simplews.connect(f"ws://[::1]:{port}/v6?x=1") as ws:
            ws.send("over v6")
            assert ws.recv(timeout=5) == "over v6"
            assert ws.remote_address[0] == "::1"
    assert seen == [f"[::1]:{port}"]
