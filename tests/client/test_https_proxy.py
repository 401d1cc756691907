"""https:// proxies: TLS to the proxy (its own proxy_ssl_context), CONNECT inside it, then TLS to the server for wss://.

The proxy is a real tinyproxy behind a real stunnel; the proxy's certificate comes
from another CA than the server's, so each TLS context is shown checking its own peer.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any, List, Tuple

import pytest
import trustme
from helpers import wait_for

import simplews

from .conftest import Stunnel, Tinyproxy

TLSProxy = Tuple[Stunnel, Tinyproxy]


@pytest.fixture
def proxy_tls(proxy_ca: trustme.CA) -> ssl.SSLContext:
    """A client context that trusts the proxy's CA only."""
    ctx = ssl.create_default_context()
    proxy_ca.configure_trust(ctx)
    return ctx


def echo(url: str, **kwargs: Any) -> None:
    with simplews.connect(url, open_timeout=20, **kwargs) as ws:
        ws.send("through")
        assert ws.recv(timeout=10) == "through"


def test_ws_through_an_https_proxy(
    tls_proxy: TLSProxy, proxy_tls: ssl.SSLContext, echo_server: simplews.Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    tunnel, proxy = tls_proxy
    for _ in range(8):
        echo(echo_server.url, proxy=f"https://127.0.0.1:{tunnel.port}", proxy_ssl_context=proxy_tls)
    # stunnel sends close_notify, often with the server's close frame, then waits with TCP open:
    # every close ended there, none at close_timeout
    assert not [r.getMessage() for r in caplog.records if "aborting" in r.getMessage()]
    assert wait_for(lambda: f"CONNECT 127.0.0.1:{echo_server.port} " in proxy.log_text(), timeout=10), proxy.log_text()
    assert "accepted connection from 127.0.0.1" in tunnel.log_text()  # the CONNECT went inside stunnel's TLS


def test_wss_through_an_https_proxy_checks_both_certificates(
    tls_proxy: TLSProxy, proxy_tls: ssl.SSLContext, tls_server: simplews.Server, client_tls: ssl.SSLContext
) -> None:
    tunnel, proxy = tls_proxy
    url = f"wss://localhost:{tls_server.port}/"
    echo(url, proxy=f"https://127.0.0.1:{tunnel.port}", proxy_ssl_context=proxy_tls, ssl_context=client_tls)
    assert wait_for(lambda: f"CONNECT localhost:{tls_server.port} " in proxy.log_text(), timeout=10), proxy.log_text()
    assert tls_server.ssl_context.sni_names == ["localhost"]  # TLS to the server ran inside the tunnel
    # the server's context does not trust the proxy's CA: the proxy's certificate is refused, and named
    with pytest.raises(simplews.TLSError, match="127.0.0.1"):
        simplews.connect(url, proxy=f"https://127.0.0.1:{tunnel.port}", proxy_ssl_context=client_tls, ssl_context=client_tls)
    # and the proxy's context does not vouch for the server
    with pytest.raises(simplews.TLSError, match="localhost"):
        simplews.connect(url, proxy=f"https://127.0.0.1:{tunnel.port}", proxy_ssl_context=proxy_tls, ssl_context=proxy_tls)


def test_https_proxy_from_the_environment(
    tls_proxy: TLSProxy, proxy_tls: ssl.SSLContext, echo_server: simplews.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    tunnel, proxy = tls_proxy
    monkeypatch.setenv("HTTP_PROXY", f"https://127.0.0.1:{tunnel.port}")
    echo(echo_server.url, proxy_ssl_context=proxy_tls)
    assert wait_for(lambda: f"CONNECT 127.0.0.1:{echo_server.port} " in proxy.log_text(), timeout=10), proxy.log_text()


def test_client_reconnects_through_an_https_proxy(tls_proxy: TLSProxy, proxy_tls: ssl.SSLContext, server_factory: Any) -> None:
    tunnel, proxy = tls_proxy
    opened: List[simplews.Connection] = []

    def on_open(ws: simplews.Connection) -> None:
        opened.append(ws)
        if len(opened) == 1:
            ws.close(1012, "restart")  # the server ends the first connection only

    server = server_factory(on_open=on_open)
    client = simplews.Client(server.url, proxy=f"https://127.0.0.1:{tunnel.port}", proxy_ssl_context=proxy_tls,
                             reconnect=True, reconnect_delay=0.01, reconnect_max_delay=0.02)  # fmt: skip
    with client:
        assert wait_for(lambda: len(opened) == 2 and client.ws is not None, timeout=30)
    assert proxy.log_text().count(f"CONNECT 127.0.0.1:{server.port} ") == 2
