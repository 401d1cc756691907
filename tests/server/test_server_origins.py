"""The origin policy over real sockets, applied by a request hook until ``Server(origins=)`` uses it.

Against the Origin that websocket-client sends by default, the one the websockets
client is given, and our client's (none by default).
"""

from __future__ import annotations

import re
from typing import Any, Dict, Optional

import pytest
import websocket  # websocket-client, an independent peer
from websockets.exceptions import InvalidStatus as PeerInvalidStatus
from websockets.sync.client import connect as peer_connect

import simplews
from simplews import Request, Response
from simplews.origins import OriginPolicy


@pytest.fixture
def origin_checked(server_factory: Any) -> simplews.Server:
    """A server whose request hook applies an :class:`OriginPolicy` (403 when refused)."""
    seen: Dict[str, Any] = {}

    def check(request: Request) -> Optional[Response]:
        origin = request.headers.get("Origin")
        seen["origin"] = origin
        return None if seen["policy"].allows(origin) else Response(403)

    server = server_factory(on_open=lambda ws: ws.send(str(seen.get("origin"))), process_request=check)
    seen["policy"] = OriginPolicy(
        [f"http://127.0.0.1:{server.port}", "https://*.app.test", re.compile(r"https://admin\.example\.(com|org)")]
    )
    return server


def test_origin_policy_with_websocket_client_default_origin(origin_checked: simplews.Server) -> None:
    port = origin_checked.port
    ws = websocket.create_connection(origin_checked.url, timeout=10)  # sends Origin: http://127.0.0.1:port
    try:
        assert ws.recv() == f"http://127.0.0.1:{port}"
    finally:
        ws.close()
    ws = websocket.create_connection(origin_checked.url, timeout=10, origin="https://Chat.App.test:443")
    try:
        assert ws.recv() == "https://Chat.App.test:443"
    finally:
        ws.close()
    for origin in ["https://app.test", "https://a.b.app.test", "https://admin.example.com.evil.net", "null"]:
        with pytest.raises(websocket.WebSocketBadStatusException) as info:
            websocket.create_connection(origin_checked.url, timeout=10, origin=origin)
        assert info.value.status_code == 403, origin


def test_origin_policy_with_our_client_and_websockets(origin_checked: simplews.Server) -> None:
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(origin_checked.url)  # no Origin, and None is not listed
    assert info.value.status == 403
    with simplews.connect(origin_checked.url, origin="https://admin.example.org") as ws:
        assert ws.recv(timeout=10) == "https://admin.example.org"
    with peer_connect(origin_checked.url, origin="https://x.app.test", open_timeout=10, proxy=None) as peer:  # type: ignore[arg-type]
        assert peer.recv(timeout=10) == "https://x.app.test"
    with pytest.raises(PeerInvalidStatus):
        peer_connect(origin_checked.url, origin="https://x.app.test:8443", open_timeout=10, proxy=None)  # type: ignore[arg-type]

