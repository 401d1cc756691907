"""wss:// against a real TLS server whose certificates are made at test time (trustme)."""

from __future__ import annotations

import socket
import ssl
from typing import Any

import pytest
import trustme

import simplews
from simplews import transport


def test_wss_with_trusted_ca_echoes_and_sends_sni(tls_server: simplews.Server, client_tls: ssl.SSLContext) -> None:
    url = f"wss://localhost:{tls_server.port}/secure"
    with simplews.connect(url, ssl_context=client_tls) as ws:
        assert ws.tls is not None and ws.tls.version == "TLSv1.3"  # TLS in memory over a plain socket
        assert type(ws.sock) is socket.socket
        assert ws.tls.getpeercert()["subjectAltName"][0] == ("DNS", "localhost")
        ws.send("over tls")
        assert ws.recv(timeout=5) == "over tls"
        ws.send(b"\x00" * 200_000)
        assert ws.recv(timeout=5) == b"\x00" * 200_000
    assert ws.close_code == 1000
    assert tls_server.ssl_context.sni_names == ["localhost"]


def test_server_hostname_overrides_sni_and_check(tls_server: simplews.Server, client_tls: ssl.SSLContext) -> None:
    # connect to the IP but verify (and send SNI) as "localhost", e.g. behind a load balancer
    with simplews.connect(
        f"wss://127.0.0.1:{tls_server.port}/", ssl_context=client_tls, server_hostname="localhost"
    ) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
    assert tls_server.ssl_context.sni_names == ["localhost"]


def test_ip_address_certificate_matches(tls_server: simplews.Server, client_tls: ssl.SSLContext) -> None:
    with simplews.connect(f"wss://127.0.0.1:{tls_server.port}/", ssl_context=client_tls) as ws:
        ws.send("ip")
        assert ws.recv(timeout=5) == "ip"


def test_default_context_uses_certifi_and_rejects_unknown_ca(tls_server: simplews.Server) -> None:
    # no ssl_context: certifi's bundle, which does not know the test CA
    with pytest.raises(simplews.TLSError) as info:
        simplews.connect(f"wss://localhost:{tls_server.port}/", open_timeout=10)
    message = str(info.value)
    assert "localhost" in message and "certificate" in message.lower()
    assert isinstance(info.value, simplews.ConnectError) and isinstance(info.value.__cause__, ssl.SSLCertVerificationError)


def test_default_context_verifies_hostnames_with_certifi() -> None:
    import certifi

    ctx = transport.default_ssl_context()
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    # the default context holds certifi's bundle (compare with a context made from it)
    reference = ssl.create_default_context(cafile=certifi.where())
    assert len(ctx.get_ca_certs()) == len(reference.get_ca_certs()) > 0


def test_hostname_mismatch_is_a_clear_tls_error(ca: trustme.CA, client_tls: ssl.SSLContext) -> None:
    other = ca.issue_cert("other.example")  # valid chain, wrong name
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    other.configure_cert(ctx)
    with simplews.serve(on_message=lambda ws, m: ws.send(m), port=0, ssl_context=ctx) as server:
        with pytest.raises(simplews.TLSError) as info:
            simplews.connect(f"wss://localhost:{server.port}/", ssl_context=client_tls)
    message = str(info.value)
    assert "localhost" in message and "hostname mismatch" in message.lower(), message


def test_expired_certificate_is_rejected(ca: trustme.CA, client_tls: ssl.SSLContext) -> None:
    import datetime

    old = ca.issue_cert("localhost", not_after=datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    old.configure_cert(ctx)
    with simplews.serve(port=0, ssl_context=ctx) as server:
        with pytest.raises(simplews.TLSError) as info:
            simplews.connect(f"wss://localhost:{server.port}/", ssl_context=client_tls)
    assert "localhost" in str(info.value) and "expired" in str(info.value).lower()


def test_ssl_context_can_disable_verification(tls_server: simplews.Server) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with simplews.connect(f"wss://localhost:{tls_server.port}/", ssl_context=ctx) as ws:
        ws.send("unverified but chosen explicitly")
        assert ws.recv(timeout=5) == "unverified but chosen explicitly"


def test_plain_http_peer_behind_wss_url_fails_cleanly(raw_peer: Any, client_tls: ssl.SSLContext) -> None:
    def plain_http(conn: socket.socket) -> None:
        conn.recv(4096)  # the ClientHello, which a plain HTTP server cannot parse
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    peer = raw_peer(plain_http)
    with pytest.raises(simplews.TLSError) as info:
        simplews.connect(f"wss://localhost:{peer.port}/", ssl_context=client_tls, open_timeout=10)
    assert "localhost" in str(info.value)


def test_silent_tls_peer_times_out_distinctly(raw_peer: Any, client_tls: ssl.SSLContext) -> None:
    peer = raw_peer(lambda conn: conn.recv(4096) and conn.recv(4096))  # reads the ClientHello, never answers
    with pytest.raises(simplews.OpenTimeout) as info:
        simplews.connect(f"wss://localhost:{peer.port}/", ssl_context=client_tls, open_timeout=0.5)
    assert "TLS" in str(info.value) and "localhost" in str(info.value)


def test_wss_over_ipv6_literal(server_tls: ssl.SSLContext, client_tls: ssl.SSLContext) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this kernel")
    try:
        server = simplews.serve(on_message=lambda ws, m: ws.send(m), host="::1", port=0, ssl_context=server_tls)
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    with server:
        with simplews.connect(f"wss://[::1]:{server.port}/v6", ssl_context=client_tls) as ws:
            ws.send("v6")
            assert ws.recv(timeout=5) == "v6"
            assert ws.remote_address[0] == "::1"
