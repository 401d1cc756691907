"""SOCKS proxies (socks5h, socks5, socks4a, socks4) through real SOCKS server processes on 127.0.0.1.

microsocks serves SOCKS5 (with and without a password), siosocks SOCKS4 and SOCKS4a, pproxy
SOCKS4 with a user id. Each server's own log says what it was asked to connect to.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
from typing import Any, Callable, List

import pytest
from helpers import wait_for

import simplews

from .conftest import RawPeer, SocksServer

#: the server each scheme is tested against
KIND = {"socks5": "microsocks", "socks5h": "microsocks", "socks4": "siosocks", "socks4a": "siosocks"}


def _asked_for(server: SocksServer, target: str) -> int:
    """How many times the server's log says it was asked to connect to ``target`` (host:port)."""
    line = {"microsocks": f": connected to {target}\n", "siosocks": f"connect call {target}\n", "pproxy": f" -> {target}\n"}
    return server.log_text().count(line[server.kind])


def _dead_port() -> int:
    """A local port where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _echo_once(url: str, **kwargs: Any) -> None:
    with simplews.connect(url, open_timeout=20, **kwargs) as ws:
        ws.send("through socks")
        assert ws.recv(timeout=10) == "through socks"
    assert ws.close_code == 1000


@pytest.fixture
def unresolvable(monkeypatch: pytest.MonkeyPatch) -> List[str]:
    """Make ``localhost`` unresolvable in this process (the proxies still resolve it); list every name looked up."""
    real = socket.getaddrinfo
    looked_up: List[str] = []

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        looked_up.append(host)
        if host == "localhost":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return looked_up


# --- every scheme, ws and wss -------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "socks4", "socks4a"])
def test_each_scheme_tunnels_ws_and_wss(
    scheme: str,
    socks_factory: Callable[..., SocksServer],
    echo_server: simplews.Server,
    tls_server: simplews.Server,
    client_tls: ssl.SSLContext,
) -> None:
    proxy = socks_factory(KIND[scheme])
    _echo_once(echo_server.url, proxy=proxy.url(scheme))
    assert wait_for(lambda: _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 1), proxy.log_text()
    # wss: TLS runs end to end inside the tunnel; SNI and the certificate check use the URL's name
    host = "localhost" if scheme.endswith(("h", "a")) else "127.0.0.1"
    _echo_once(f"wss://{host}:{tls_server.port}/", proxy=proxy.url(scheme), ssl_context=client_tls)
    assert wait_for(lambda: _asked_for(proxy, f"{host}:{tls_server.port}") == 1), proxy.log_text()


@pytest.mark.parametrize("scheme", ["socks5h", "socks4a"])
def test_remote_dns_schemes_send_the_host_name(
    scheme: str, socks_factory: Callable[..., SocksServer], echo_server: simplews.Server, unresolvable: List[str]
) -> None:
    proxy = socks_factory(KIND[scheme])
    with pytest.raises(simplews.HostNotFound):
        simplews.connect(f"ws://localhost:{echo_server.port}/", proxy=None, open_timeout=10)  # this process cannot resolve it
    _echo_once(f"ws://localhost:{echo_server.port}/", proxy=proxy.url(scheme))
    assert unresolvable.count("localhost") == 1  # only the direct attempt above looked it up
    assert wait_for(lambda: _asked_for(proxy, f"localhost:{echo_server.port}") == 1), proxy.log_text()
    assert _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 0


@pytest.mark.parametrize("scheme", ["socks5", "socks4"])
def test_local_dns_schemes_send_an_address(
    scheme: str, socks_factory: Callable[..., SocksServer], echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = socks_factory(KIND[scheme])
    looked_up: List[str] = []
    real = socket.getaddrinfo
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: looked_up.append(host) or real(host, *a, **k))
    _echo_once(f"ws://localhost:{echo_server.port}/", proxy=proxy.url(scheme))
    assert "localhost" in looked_up
    assert wait_for(lambda: _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 1), proxy.log_text()
    assert _asked_for(proxy, f"localhost:{echo_server.port}") == 0


@pytest.mark.parametrize("scheme", ["socks5", "socks4"])
def test_local_dns_failure_is_host_not_found_before_the_proxy(
    scheme: str, socks_factory: Callable[..., SocksServer], echo_server: simplews.Server, unresolvable: List[str]
) -> None:
    proxy = socks_factory(KIND[scheme])
    unresolvable.clear()
    with pytest.raises(simplews.HostNotFound, match="localhost"):
        simplews.connect(f"ws://localhost:{echo_server.port}/", proxy=proxy.url(scheme), open_timeout=10)
    assert unresolvable == ["localhost"]  # the proxy's address was never even looked up


# --- credentials -------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5", "socks5h"])
def test_socks5_with_a_password(scheme: str, socks_factory: Callable[..., SocksServer], echo_server: simplews.Server) -> None:
    proxy = socks_factory("microsocks", user="sensor", password="s3cr%t")
    _echo_once(echo_server.url, proxy=proxy.url(scheme, "sensor", "s3cr%25t"))  # percent-decoded, as in any URL
    assert wait_for(lambda: _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 1), proxy.log_text()


@pytest.mark.parametrize(
    "user, password, reason",
    [("sensor", "wrong", "authentication failure"), (None, None, "No acceptable authentication methods")],
)
def test_socks5_bad_or_missing_credentials_are_a_clear_proxy_error(
    user: Any, password: Any, reason: str, socks_factory: Callable[..., SocksServer], echo_server: simplews.Server
) -> None:
    proxy = socks_factory("microsocks", user="sensor", password="s3cret")
    with pytest.raises(simplews.ProxyError) as info:
        simplews.connect(echo_server.url, proxy=proxy.url("socks5h", user, password), open_timeout=10)
    message = str(info.value)
    assert reason in message and f"socks5h proxy 127.0.0.1:{proxy.port}" in message
    assert "wrong" not in message and "s3cret" not in message
    assert _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 0


def test_socks4_sends_the_user_id(socks_factory: Callable[..., SocksServer], echo_server: simplews.Server) -> None:
    proxy = socks_factory("pproxy", user="sensor")  # pproxy checks a SOCKS4 user id, and drops the connection if wrong
    with pytest.raises(simplews.ProxyError, match="closed the connection during the SOCKS exchange"):
        simplews.connect(echo_server.url, proxy=proxy.url("socks4"), open_timeout=10)
    assert wait_for(lambda: "Unauthorized SOCKS" in proxy.log_text()), proxy.log_text()
    _echo_once(echo_server.url, proxy=proxy.url("socks4", "sensor"))
    assert wait_for(lambda: _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 1), proxy.log_text()


# --- failures ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["socks5h", "socks4a"])
def test_proxy_down_is_refused_and_named(scheme: str, echo_server: simplews.Server) -> None:
    pytest.importorskip("python_socks")
    port = _dead_port()
    with pytest.raises(simplews.ConnectionRefused) as info:
        simplews.connect(echo_server.url, proxy=f"{scheme}://127.0.0.1:{port}", open_timeout=10)
    assert f"{scheme} proxy 127.0.0.1:{port}" in str(info.value)


def test_target_refused_through_socks5_is_connection_refused(socks_factory: Callable[..., SocksServer]) -> None:
    proxy = socks_factory("microsocks")
    port = _dead_port()
    with pytest.raises(simplews.ConnectionRefused) as info:
        simplews.connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url("socks5h"), open_timeout=10)
    assert str(info.value) == f"socks5h proxy 127.0.0.1:{proxy.port}: connection refused by 127.0.0.1:{port}"


def test_target_refused_through_socks4_is_a_proxy_error(socks_factory: Callable[..., SocksServer]) -> None:
    proxy = socks_factory("siosocks")
    port = _dead_port()
    with pytest.raises(simplews.ProxyError) as info:  # SOCKS4 has one code for every failure
        simplews.connect(f"ws://localhost:{port}/", proxy=proxy.url("socks4a"), open_timeout=10)
    assert str(info.value) == (
        f"socks4a proxy 127.0.0.1:{proxy.port} refused the connection to localhost:{port}: Request rejected or failed"
    )


def test_silent_proxy_is_an_open_timeout(socks_factory: Callable[..., SocksServer], echo_server: simplews.Server) -> None:
    proxy = socks_factory("microsocks")
    proxy.pause()  # the kernel completes the TCP handshake; the SOCKS reply never comes
    with pytest.raises(simplews.OpenTimeout, match=f"SOCKS exchange with the socks5h proxy 127.0.0.1:{proxy.port}"):
        simplews.connect(echo_server.url, proxy=proxy.url("socks5h"), open_timeout=0.5)


def test_client_stop_aborts_a_connect_blocked_in_the_proxy(raw_peer: Callable[..., RawPeer], echo_server: simplews.Server) -> None:
    pytest.importorskip("python_socks")
    greeted = threading.Event()

    def silent_after_greeting(conn: socket.socket) -> None:
        conn.recv(16)  # the SOCKS5 greeting
        greeted.set()
        conn.recv(16)  # until the client goes away

    peer = raw_peer(silent_after_greeting)
    errors: List[BaseException] = []
    client = simplews.Client(
        echo_server.url, on_error=lambda ws, exc: errors.append(exc), proxy=f"socks5h://127.0.0.1:{peer.port}", open_timeout=None
    )
    client.start()
    assert greeted.wait(10)
    client.stop(timeout=10)
    assert not client.running and errors == []


def test_socks4_cannot_reach_ipv6(echo_server: simplews.Server) -> None:
    with pytest.raises(simplews.InvalidURI, match="cannot reach the IPv6 address"):
        simplews.connect("ws://[::1]:9/", proxy=f"socks4a://127.0.0.1:{_dead_port()}")


@pytest.mark.parametrize(
    "proxy, message",
    [
        ("socks://127.0.0.1:1080", "unsupported proxy scheme socks://"),
        ("socks5://127.0.0.1:99999", "bad host or port"),
        ("socks5h://sensor@127.0.0.1:1080", "needs a user name and a password"),
        ("socks5h://s%C3%A9nsor:pw@127.0.0.1:1080", "must be ASCII"),
    ],
)
def test_bad_socks_urls_are_invalid_uri(proxy: str, message: str, echo_server: simplews.Server) -> None:
    with pytest.raises(simplews.InvalidURI, match=message):
        simplews.connect(echo_server.url, proxy=proxy)


def test_missing_extra_is_named_before_any_io(monkeypatch: pytest.MonkeyPatch, echo_server: simplews.Server) -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    monkeypatch.setitem(sys.modules, "python_socks", None)  # as if not installed: importing it raises ImportError
    with listener:
        with pytest.raises(simplews.InvalidURI) as info:
            simplews.connect(echo_server.url, proxy=f"socks5h://127.0.0.1:{listener.getsockname()[1]}")
        assert str(info.value) == "socks5h:// proxies need the python-socks package: pip install 'simplews[socks]'"
        with pytest.raises(BlockingIOError):
            listener.accept()  # nobody connected to the proxy


# --- the environment ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ALL_PROXY", "all_proxy"])
def test_all_proxy_may_name_a_socks_proxy(
    name: str, socks_factory: Callable[..., SocksServer], echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy = socks_factory("microsocks")
    monkeypatch.setenv(name, proxy.url("socks5h"))
    _echo_once(echo_server.url)
    assert wait_for(lambda: _asked_for(proxy, f"127.0.0.1:{echo_server.port}") == 1), proxy.log_text()


def test_https_and_http_proxy_may_name_socks_proxies(
    socks_factory: Callable[..., SocksServer],
    echo_server: simplews.Server,
    tls_server: simplews.Server,
    client_tls: ssl.SSLContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    socks5, socks4 = socks_factory("microsocks"), socks_factory("siosocks")
    monkeypatch.setenv("HTTPS_PROXY", socks5.url("socks5h"))
    monkeypatch.setenv("HTTP_PROXY", socks4.url("socks4a"))
    _echo_once(f"wss://localhost:{tls_server.port}/", ssl_context=client_tls)
    _echo_once(echo_server.url)
    assert wait_for(lambda: _asked_for(socks5, f"localhost:{tls_server.port}") == 1), socks5.log_text()
    assert wait_for(lambda: _asked_for(socks4, f"127.0.0.1:{echo_server.port}") == 1), socks4.log_text()


def test_no_proxy_bypasses_a_socks_proxy_from_the_environment(echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", f"socks5h://127.0.0.1:{_dead_port()}")  # refused if used
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    _echo_once(echo_server.url)
    monkeypatch.setenv("NO_PROXY", "example.com")
    pytest.importorskip("python_socks")
    with pytest.raises(simplews.ConnectionRefused, match="socks5h proxy"):
        simplews.connect(echo_server.url, open_timeout=10)


def test_client_reconnects_through_a_socks_proxy(socks_factory: Callable[..., SocksServer], echo_server: simplews.Server) -> None:
    proxy = socks_factory("microsocks", user="sensor", password="s3cret")
    opened = []

    def on_open(ws: simplews.Connection) -> None:
        opened.append(ws)
        if len(opened) == 1:
            ws.close(1001, "first connection ends")

    client = simplews.Client(
        echo_server.url, on_open=on_open, proxy=proxy.url("socks5h", "sensor", "s3cret"), reconnect=True, reconnect_delay=0.05
    )
    with client:
        assert wait_for(lambda: len(opened) >= 2, timeout=20)
    assert wait_for(lambda: _asked_for(proxy, f"127.0.0.1:{echo_server.port}") >= 2), proxy.log_text()
