"""Redirects answered to the opening handshake are followed to ws:// and wss:// URLs."""

from __future__ import annotations

import base64
import socket
import ssl
from typing import Any, List, Tuple

import pytest

import simplews


def _redirecting_server(server_factory: Any, status: int, location: str, **kwargs: Any) -> Tuple[simplews.Server, List[Any]]:
    """A server that redirects ``/old`` to ``location`` and echoes elsewhere; it records each request."""
    seen: List[Any] = []

    def process_request(request: Any) -> Any:
        seen.append(request)
        if request.path == "/old":
            return (status, [("Location", location)], "moved")
        return None

    server = server_factory(process_request=process_request, on_message=lambda ws, m: ws.send(m), **kwargs)
    return server, seen


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_relative_redirect_is_followed(server_factory: Any, status: int) -> None:
    server, seen = _redirecting_server(server_factory, status, "/new?x=1")
    with simplews.connect(f"ws://127.0.0.1:{server.port}/old") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"
    assert [r.path for r in seen] == ["/old", "/new?x=1"]


def test_redirect_to_another_server(server_factory: Any) -> None:
    target = server_factory(on_message=lambda ws, m: ws.send("target:" + m))
    server, _ = _redirecting_server(server_factory, 302, f"ws://127.0.0.1:{target.port}/there")
    with simplews.connect(f"ws://127.0.0.1:{server.port}/old") as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "target:x"
        assert ws.remote_address[1] == target.port


def test_http_location_is_mapped_to_ws(server_factory: Any) -> None:
    target = server_factory(on_message=lambda ws, m: ws.send(m))
    server, _ = _redirecting_server(server_factory, 307, f"http://127.0.0.1:{target.port}/")
    with simplews.connect(f"ws://127.0.0.1:{server.port}/old") as ws:
        assert ws.remote_address[1] == target.port


def test_redirect_from_ws_to_wss(server_factory: Any, tls_server: simplews.Server, client_tls: ssl.SSLContext) -> None:
    server, _ = _redirecting_server(server_factory, 301, f"wss://localhost:{tls_server.port}/secure")
    with simplews.connect(f"ws://127.0.0.1:{server.port}/old", ssl_context=client_tls) as ws:
        assert ws.tls is not None and type(ws.sock) is socket.socket
        ws.send("now secure")
        assert ws.recv(timeout=5) == "now secure"


def test_redirect_from_wss_to_ws_is_refused(
    server_factory: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, echo_server: simplews.Server
) -> None:
    server, _ = _redirecting_server(server_factory, 302, echo_server.url, ssl_context=server_tls)
    with pytest.raises(simplews.InvalidHandshake, match="insecure"):
        simplews.connect(f"wss://localhost:{server.port}/old", ssl_context=client_tls)


def test_redirect_loop_stops_at_the_limit(server_factory: Any) -> None:
    server, seen = _redirecting_server(server_factory, 302, "/old")
    with pytest.raises(simplews.InvalidHandshake, match="too many redirects"):
        simplews.connect(f"ws://127.0.0.1:{server.port}/old", max_redirects=3)
    assert len(seen) == 4


def test_default_redirect_limit_is_small(server_factory: Any) -> None:
    server, seen = _redirecting_server(server_factory, 308, "/old")
    with pytest.raises(simplews.InvalidHandshake, match="too many redirects"):
        simplews.connect(f"ws://127.0.0.1:{server.port}/old")
    assert 2 <= len(seen) <= 11


def test_max_redirects_zero_reports_the_redirect(server_factory: Any) -> None:
    server, _ = _redirecting_server(server_factory, 301, "/new")
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(f"ws://127.0.0.1:{server.port}/old", max_redirects=0)
    assert info.value.status == 301 and info.value.response.headers["Location"] == "/new"


def test_redirect_without_location_is_an_invalid_status(server_factory: Any) -> None:
    server = server_factory(process_request=lambda r: (302, [], ""))
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(server.url)
    assert info.value.status == 302


def test_redirect_to_a_non_websocket_url(server_factory: Any) -> None:
    server, _ = _redirecting_server(server_factory, 301, "ftp://127.0.0.1/file")
    with pytest.raises(simplews.InvalidURI):
        simplews.connect(f"ws://127.0.0.1:{server.port}/old")


def test_other_3xx_is_not_followed(server_factory: Any) -> None:
    server, seen = _redirecting_server(server_factory, 304, "/new")
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(f"ws://127.0.0.1:{server.port}/old")
    assert info.value.status == 304 and len(seen) == 1


def test_credentials_follow_same_server_redirects_only(server_factory: Any) -> None:
    other, other_seen = _redirecting_server(server_factory, 301, "/unused")
    server, seen = _redirecting_server(server_factory, 301, "/new")
    with simplews.connect(f"ws://u:pw@127.0.0.1:{server.port}/old"):
        pass
    expected = "Basic " + base64.b64encode(b"u:pw").decode()
    assert [r.headers.get("Authorization") for r in seen] == [expected, expected]

    server2, seen2 = _redirecting_server(server_factory, 302, f"ws://127.0.0.1:{other.port}/")
    with simplews.connect(f"ws://u:pw@127.0.0.1:{server2.port}/old"):
        pass
    assert seen2[0].headers.get("Authorization") == expected
    assert other_seen[0].headers.get("Authorization") is None


# --- credentials on cross-origin redirects --------------------------------------------------

CREDENTIALS = {"Authorization": "Bearer tok-redirect", "Cookie": "sid=cookie-redirect", "Proxy-Authorization": "Basic cHJveHk="}


def _credential_headers(form: str) -> Any:
    """The credentials plus a harmless header, as a dict, as pairs with odd-case names, or as Headers."""
    if form == "dict":
        return {**CREDENTIALS, "X-Keep": "1"}
    pairs = [(name.upper() if i % 2 else name.lower(), value) for i, (name, value) in enumerate(CREDENTIALS.items())]
    pairs.append(("X-Keep", "1"))
    return pairs if form == "pairs" else simplews.Headers(pairs)


def _credentials_seen(request: Any) -> List[Any]:
    """The credential headers a server received in one request (``None`` where absent)."""
    return [request.headers.get(name) for name in CREDENTIALS]


def _tls_options(scheme: str, server_tls: ssl.SSLContext) -> Any:
    return {"ssl_context": server_tls} if scheme == "wss" else {}


@pytest.mark.parametrize("form", ["dict", "pairs", "headers"])
@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_credential_headers_are_dropped_on_a_redirect_to_another_port(
    server_factory: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, scheme: str, form: str
) -> None:
    tls = _tls_options(scheme, server_tls)
    target, target_seen = _redirecting_server(server_factory, 301, "/unused", **tls)
    server, seen = _redirecting_server(server_factory, 307, f"{scheme}://localhost:{target.port}/there", **tls)
    with simplews.connect(
        f"{scheme}://localhost:{server.port}/old", headers=_credential_headers(form), ssl_context=client_tls
    ) as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        assert ws.remote_address[1] == target.port
    assert _credentials_seen(seen[0]) == list(CREDENTIALS.values())  # the first origin got them
    assert [r.path for r in target_seen] == ["/there"]
    assert _credentials_seen(target_seen[0]) == [None, None, None]
    assert target_seen[0].headers.get("X-Keep") == "1"  # other user headers still follow


def test_credential_headers_are_dropped_on_a_redirect_to_another_host_name(server_factory: Any) -> None:
    """The same server and port under another name is another origin."""
    seen: List[Any] = []
    ports: List[int] = []

    def rename(request: Any) -> Any:
        seen.append(request)
        return (302, [("Location", f"ws://localhost:{ports[0]}/named")], "") if request.path == "/old" else None

    ports.append(server_factory(process_request=rename).port)
    with simplews.connect(f"ws://127.0.0.1:{ports[0]}/old", headers=CREDENTIALS):
        pass
    assert [(r.path, r.headers["Host"]) for r in seen] == [("/old", f"127.0.0.1:{ports[0]}"), ("/named", f"localhost:{ports[0]}")]
    assert _credentials_seen(seen[0]) == list(CREDENTIALS.values())
    assert _credentials_seen(seen[1]) == [None, None, None]


def test_credential_headers_are_dropped_on_a_redirect_from_ws_to_wss(
    server_factory: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    target, target_seen = _redirecting_server(server_factory, 301, "/unused", ssl_context=server_tls)
    server, seen = _redirecting_server(server_factory, 308, f"wss://localhost:{target.port}/secure")
    with simplews.connect(f"ws://localhost:{server.port}/old", headers=CREDENTIALS, ssl_context=client_tls):
        pass
    assert _credentials_seen(seen[0]) == list(CREDENTIALS.values())
    assert _credentials_seen(target_seen[0]) == [None, None, None]


@pytest.mark.parametrize("scheme", ["ws", "wss"])
def test_same_origin_redirect_keeps_credential_headers(
    server_factory: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext, scheme: str
) -> None:
    server, seen = _redirecting_server(server_factory, 302, "/new", **_tls_options(scheme, server_tls))
    with simplews.connect(f"{scheme}://localhost:{server.port}/old", headers=_credential_headers("pairs"), ssl_context=client_tls):
        pass
    assert [r.path for r in seen] == ["/old", "/new"]
    assert [_credentials_seen(r) for r in seen] == [list(CREDENTIALS.values())] * 2


def test_dropped_credentials_stay_dropped_on_the_way_back(server_factory: Any) -> None:
    """A -> B -> A: once a hop left the origin, neither header nor URL credentials come back."""
    seen: List[Any] = []
    ports: List[int] = []

    def bounce(request: Any) -> Any:
        seen.append(request)
        if request.path == "/old":
            return (302, [("Location", f"ws://127.0.0.1:{ports[1]}/bounce")], "")
        if request.path == "/bounce":
            return (302, [("Location", f"ws://127.0.0.1:{ports[0]}/final")], "")
        return None

    first = server_factory(process_request=bounce)
    second = server_factory(process_request=bounce)
    ports += [first.port, second.port]
    with simplews.connect(f"ws://u:pw@127.0.0.1:{first.port}/old", headers={"Cookie": "sid=1", "X-Keep": "1"}) as ws:
        assert ws.remote_address[1] == first.port
    assert [r.path for r in seen] == ["/old", "/bounce", "/final"]
    basic = "Basic " + base64.b64encode(b"u:pw").decode()
    assert [(r.headers.get("Authorization"), r.headers.get("Cookie")) for r in seen] == [
        (basic, "sid=1"),
        (None, None),
        (None, None),
    ]
    assert [r.headers.get("X-Keep") for r in seen] == ["1", "1", "1"]


def test_proxy_credentials_still_reach_the_proxy_after_a_cross_origin_redirect(
    server_factory: Any, proxy_factory: Any
) -> None:
    proxy = proxy_factory(auth="dev proxy-pw")
    target, target_seen = _redirecting_server(server_factory, 301, "/unused")
    server, seen = _redirecting_server(server_factory, 302, f"ws://127.0.0.1:{target.port}/there")
    # the proxy answers 407 to a CONNECT without its credentials: reaching the target proves they went
    with simplews.connect(
        f"ws://127.0.0.1:{server.port}/old", headers=CREDENTIALS, proxy=proxy.url_with("dev", "proxy-pw")
    ) as ws:
        ws.send("via proxy")
        assert ws.recv(timeout=5) == "via proxy"
    assert _credentials_seen(seen[0]) == list(CREDENTIALS.values())
    assert [r.path for r in target_seen] == ["/there"] and _credentials_seen(target_seen[0]) == [None, None, None]
