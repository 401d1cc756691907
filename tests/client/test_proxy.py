"""HTTP CONNECT proxies, through a real tinyproxy process started on 127.0.0.1."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
from helpers import wait_for

import simplews

from .conftest import Tinyproxy


def _tunnels(proxy: Tinyproxy, port: int) -> int:
    """How many CONNECT requests to 127.0.0.1:port the proxy logged."""
    return proxy.log_text().count(f"CONNECT 127.0.0.1:{port} ")


def _dead_port() -> int:
    """A local port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _echo_once(url: str, **kwargs: Any) -> simplews.Connection:
    with simplews.connect(url, open_timeout=10, **kwargs) as ws:
        ws.send("through")
        assert ws.recv(timeout=5) == "through"
    return ws


def test_explicit_proxy_tunnels_ws(proxy: Tinyproxy, echo_server: simplews.Server) -> None:
    ws = _echo_once(echo_server.url, proxy=proxy.url)
    assert ws.close_code == 1000
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) == 1), proxy.log_text()


def test_explicit_proxy_tunnels_wss_with_sni(
    proxy: Tinyproxy, tls_server: simplews.Server, client_tls: ssl.SSLContext
) -> None:
    _echo_once(f"wss://localhost:{tls_server.port}/", proxy=proxy.url, ssl_context=client_tls)
    assert wait_for(lambda: proxy.log_text().count(f"CONNECT localhost:{tls_server.port} ") == 1), proxy.log_text()
    assert tls_server.ssl_context.sni_names == ["localhost"]  # TLS runs end to end inside the tunnel


def test_proxy_with_basic_auth(proxy_factory: Any, echo_server: simplews.Server) -> None:
    proxy = proxy_factory(auth="sensor s3cret")
    _echo_once(echo_server.url, proxy=proxy.url_with("sensor", "s3cret"))
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) == 1), proxy.log_text()


@pytest.mark.parametrize("credentials", [None, ("sensor", "wrong")])
def test_proxy_auth_required_is_a_clear_407_error(proxy_factory: Any, echo_server: simplews.Server, credentials: Any) -> None:
    proxy = proxy_factory(auth="sensor s3cret")
    url = proxy.url if credentials is None else proxy.url_with(*credentials)
    with pytest.raises(simplews.ProxyError) as info:
        simplews.connect(echo_server.url, proxy=url, open_timeout=10)
    message = str(info.value)
    # tinyproxy answers a missing Proxy-Authorization with 407 and a wrong one with 401
    assert ("407" if credentials is None else "401") in message
    assert "authentication" in message and f"127.0.0.1:{proxy.port}" in message
    assert "wrong" not in message and "s3cret" not in message
    assert isinstance(info.value, simplews.ConnectError)


def test_proxy_forbidding_the_target_is_a_clear_403_error(proxy_factory: Any, echo_server: simplews.Server) -> None:
    proxy = proxy_factory(connect_ports=[443])  # CONNECT only to 443: our server's port is refused
    with pytest.raises(simplews.ProxyError) as info:
        simplews.connect(echo_server.url, proxy=proxy.url, open_timeout=10)
    assert "403" in str(info.value) and f"127.0.0.1:{echo_server.port}" in str(info.value)


def test_unreachable_proxy_is_refused_and_named(echo_server: simplews.Server) -> None:
    port = _dead_port()
    with pytest.raises(simplews.ConnectionRefused) as info:
        simplews.connect(echo_server.url, proxy=f"http://127.0.0.1:{port}")
    assert f"proxy 127.0.0.1:{port}" in str(info.value)


def test_unsupported_proxy_scheme(echo_server: simplews.Server) -> None:
    with pytest.raises(simplews.InvalidURI, match="unsupported proxy ftp:// .use http://, https://, socks5h://"):
        simplews.connect(echo_server.url, proxy="ftp://127.0.0.1:1080")


@pytest.mark.parametrize("name", ["HTTP_PROXY", "http_proxy"])
def test_http_proxy_from_environment_applies_to_loopback(
    name: str, proxy: Tinyproxy, echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, proxy.url)
    _echo_once(echo_server.url)
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) == 1), proxy.log_text()


@pytest.mark.parametrize("name", ["HTTPS_PROXY", "https_proxy"])
def test_https_proxy_from_environment_for_wss(
    name: str,
    proxy: Tinyproxy,
    tls_server: simplews.Server,
    client_tls: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(name, proxy.url)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")  # would fail if wrongly used for wss
    _echo_once(f"wss://localhost:{tls_server.port}/", ssl_context=client_tls)
    assert wait_for(lambda: proxy.log_text().count(f"CONNECT localhost:{tls_server.port} ") == 1), proxy.log_text()


def test_https_proxy_is_not_used_for_ws(echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{_dead_port()}")
    _echo_once(echo_server.url)


@pytest.mark.parametrize(
    "no_proxy",
    ["127.0.0.1", "localhost,127.0.0.1", "127.0.0.0/8", "*", "example.com, 127.0.0.1:{port}", "localhost"],
)
def test_no_proxy_bypasses_the_environment_proxy(
    no_proxy: str, echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")  # refused if used
    monkeypatch.setenv("no_proxy", no_proxy.format(port=echo_server.port))
    host = "localhost" if no_proxy == "localhost" else "127.0.0.1"
    _echo_once(f"ws://{host}:{echo_server.port}/")


def test_no_proxy_with_other_port_does_not_bypass(
    proxy: Tinyproxy, echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", f"127.0.0.1:{echo_server.port + 1},example.com")
    _echo_once(echo_server.url)
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) == 1), proxy.log_text()


def test_proxy_none_ignores_the_environment(echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_dead_port()}")
    with pytest.raises(simplews.ConnectionRefused):
        simplews.connect(echo_server.url)  # the environment proxy is really used...
    _echo_once(echo_server.url, proxy=None)  # ...unless proxy=None


def test_explicit_proxy_wins_over_no_proxy(
    proxy: Tinyproxy, echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NO_PROXY", "*")
    _echo_once(echo_server.url, proxy=proxy.url)
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) == 1), proxy.log_text()


def test_client_reconnects_through_the_proxy(proxy: Tinyproxy, echo_server: simplews.Server) -> None:
    opened = []

    def on_open(ws: simplews.Connection) -> None:
        opened.append(ws)
        if len(opened) == 1:
            ws.close(1001, "first connection ends")

    client = simplews.Client(echo_server.url, on_open=on_open, proxy=proxy.url, reconnect=True, reconnect_delay=0.05)
    with client:
        assert wait_for(lambda: len(opened) >= 2, timeout=20)
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) >= 2), proxy.log_text()


def test_certificate_failure_through_the_proxy_names_the_target(proxy: Tinyproxy, tls_server: simplews.Server) -> None:
    with pytest.raises(simplews.TLSError) as info:
        simplews.connect(f"wss://localhost:{tls_server.port}/", proxy=proxy.url)  # certifi does not know the test CA
    assert "localhost" in str(info.value) and "certificate" in str(info.value).lower()


@pytest.mark.parametrize("no_proxy", ["::1", "[::1]", "[::1]:{port}", "::/0", "localhost,::1"])
def test_no_proxy_with_ipv6_entries(no_proxy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        server = simplews.serve(on_message=lambda ws, m: ws.send(m), host="::1", port=0)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    port = server.port
    with server:
        monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{_dead_port()}")  # refused if used
        monkeypatch.setenv("no_proxy", no_proxy.format(port=port))
        _echo_once(f"ws://[::1]:{port}/")
        monkeypatch.setenv("no_proxy", f"[::1]:{port + 1},::2")
        with pytest.raises(simplews.ConnectionRefused, match="proxy"):
            simplews.connect(f"ws://[::1]:{port}/")


def test_ipv6_target_through_the_proxy(proxy: Tinyproxy) -> None:
    try:
        server = simplews.serve(on_message=lambda ws, m: ws.send(m), host="::1", port=0)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    port = server.port
    with server:
        _echo_once(f"ws://[::1]:{port}/", proxy=proxy.url)
    assert wait_for(lambda: f"CONNECT [::1]:{port} " in proxy.log_text()), proxy.log_text()


def test_all_proxy_is_the_fallback(proxy: Tinyproxy, echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", proxy.url)
    _echo_once(echo_server.url)
    assert wait_for(lambda: _tunnels(proxy, echo_server.port) == 1), proxy.log_text()
