"""The client sends a User-Agent and never logs secrets: URL passwords, auth headers, proxy passwords, query tokens."""

from __future__ import annotations

import base64
import logging
import socket
from typing import Any, List

import pytest
from helpers import wait_for

import simplews

from .conftest import Tinyproxy

QUERY_TOKEN = "qtok-51c2"
LOCATION_TOKEN = "loctok-8e0b"
SECRETS = ["hunter2-url", "tok-3f9a", "proxy-pw-77", QUERY_TOKEN, LOCATION_TOKEN]
# the same secrets as they travel in Basic credentials
SECRETS += [base64.b64encode(c.encode()).decode() for c in ("sensor:hunter2-url", "u:hunter2-url", "dev:proxy-pw-77")]


def _chain(exc: Any) -> List[str]:
    """str and repr of an exception and every exception it was raised from (no source lines)."""
    out: List[str] = []
    seen = set()
    while isinstance(exc, BaseException) and id(exc) not in seen:
        seen.add(id(exc))
        out += [str(exc), repr(exc)]
        exc = exc.__cause__ or exc.__context__
    return out


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, simplews's included, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="simplews")
    return caplog


def _all_text(caplog: pytest.LogCaptureFixture, extra: List[Any]) -> str:
    """Every log record as written (traceback and stack included), every given exception or object, as one string."""
    parts = []
    for record in caplog.records:
        parts.append(caplog.handler.format(record))
        if record.exc_info:
            parts += _chain(record.exc_info[1])
    for item in extra:
        parts += _chain(item) if isinstance(item, BaseException) else [repr(item), str(item)]
    return "\n".join(parts)


def _assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"{secret!r} leaked"
    assert "hunter2" not in text


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_successful_connection_through_proxy_logs_no_secret(
    caplog: pytest.LogCaptureFixture, proxy_factory: Any, echo_server: simplews.Server
) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    proxy: Tinyproxy = proxy_factory(auth="dev proxy-pw-77")
    url = f"ws://sensor:hunter2-url@127.0.0.1:{echo_server.port}/feed"
    with simplews.connect(url, headers={"Authorization": "Bearer tok-3f9a"}, proxy=proxy.url_with("dev", "proxy-pw-77")) as ws:
        ws.send("payload")
        assert ws.recv(timeout=5) == "payload"
        assert ws.request.headers["Authorization"] == "Bearer tok-3f9a"  # sent, and readable by its owner
    assert any("connected to" in r.getMessage() for r in caplog.records)  # the log was really captured
    _assert_no_secret(_all_text(caplog, [ws]))


def test_url_password_is_sent_as_basic_auth_but_never_logged(
    caplog: pytest.LogCaptureFixture, echo_server: simplews.Server
) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    with simplews.connect(f"ws://sensor:hunter2-url@127.0.0.1:{echo_server.port}/") as ws:
        assert ws.request.headers["Authorization"].startswith("Basic ")
    _assert_no_secret(_all_text(caplog, [ws, ws.request.path]))


def test_failures_log_no_secret(caplog: pytest.LogCaptureFixture, proxy_factory: Any, server_factory: Any) -> None:
    caplog.set_level(logging.DEBUG, logger="simplews")
    errors: List[BaseException] = []
    # proxy authentication failure
    proxy = proxy_factory(auth="dev right")
    with pytest.raises(simplews.ProxyError) as info:
        simplews.connect("ws://u:hunter2-url@127.0.0.1:1/", proxy=proxy.url_with("dev", "proxy-pw-77"))
    errors.append(info.value)
    # a rejected handshake, a redirect and a bad URL, all with credentials
    rejecting = server_factory(process_request=lambda r: (401, [("WWW-Authenticate", "Basic")], "no"))
    with pytest.raises(simplews.InvalidStatus) as info2:
        simplews.connect(f"ws://u:hunter2-url@127.0.0.1:{rejecting.port}/", headers={"Authorization": "Bearer tok-3f9a"})
    errors.append(info2.value)
    redirecting = server_factory(process_request=lambda r: (302, [("Location", "/x")], "") if r.path == "/" else None)
    with simplews.connect(f"ws://u:hunter2-url@127.0.0.1:{redirecting.port}/"):
        pass
    with pytest.raises(simplews.InvalidURI) as info3:
        simplews.connect("ws://u:hunter2-url@127.0.0.1:badport/")
    errors.append(info3.value)
    with pytest.raises(simplews.InvalidURI) as info4:
        simplews.connect("ws://127.0.0.1/", proxy="http://dev:proxy-pw-77@127.0.0.1:notaport")
    errors.append(info4.value)
    assert any("following redirect" in r.getMessage() for r in caplog.records)
    _assert_no_secret(_all_text(caplog, errors))


def test_client_reconnect_warnings_log_no_secret(logs: pytest.LogCaptureFixture) -> None:
    caplog = logs
    port = _dead_port()
    client = simplews.Client(
        f"ws://sensor:hunter2-url@127.0.0.1:{port}/?token={QUERY_TOKEN}", reconnect=True, reconnect_delay=0.01, max_retries=2
    )
    client.start()
    assert wait_for(lambda: not client.running, timeout=20)
    client.stop()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "***@" not in warnings[0].getMessage()
    assert warnings[0].getMessage().startswith(f"connecting to ws://127.0.0.1:{port}/?token=*** failed")
    _assert_no_secret(_all_text(caplog, []))


def test_user_agent_is_sent_to_the_proxy_and_server(proxy: Tinyproxy, server_factory: Any) -> None:
    agents: List[str] = []
    server = server_factory(process_request=lambda r: agents.append(r.headers.get("User-Agent")))
    with simplews.connect(server.url, proxy=proxy.url):
        pass
    assert agents and agents[0].startswith("simplews/")


def test_tokens_in_redirect_locations_are_masked(
    logs: pytest.LogCaptureFixture, server_factory: Any, server_tls: Any, client_tls: Any
) -> None:
    target = server_factory(on_message=lambda ws, m: ws.send(m))
    token = f"token={LOCATION_TOKEN}"
    locations = {
        "/old": f"ws://127.0.0.1:{target.port}/new?{token}",  # followed
        "/loop": f"/loop?{token}",  # too many redirects
        "/frag": f"/x?{token}#{LOCATION_TOKEN}",  # not a WebSocket URL: a fragment
        "/ftp": f"ftp://127.0.0.1/?{token}",
    }

    def redirect(request: Any) -> Any:
        location = locations.get(request.path_only)
        return None if location is None else (302, [("Location", location)], "moved")

    moved = server_factory(process_request=redirect)
    moved_tls = server_factory(process_request=lambda r: (307, [("Location", locations["/old"])], ""), ssl_context=server_tls)
    errors: List[Any] = []
    with simplews.connect(f"{moved.url}old") as ws:
        ws.send("x")
        assert ws.recv(timeout=5) == "x"
        assert ws.request.path == f"/new?{token}"  # what was sent is readable by its owner
        errors.append(ws.request)
    for path, options, error in [
        ("old", {"max_redirects": 0}, simplews.InvalidStatus),
        ("loop", {"max_redirects": 2}, simplews.InvalidHandshake),
        ("frag", {}, simplews.InvalidURI),
        ("ftp", {}, simplews.InvalidURI),
    ]:
        with pytest.raises(error) as info:
            simplews.connect(f"{moved.url}{path}", **options)
        errors.append(info.value)
    errors.append(errors[1].response)  # the 302 itself, Location header and all
    with pytest.raises(simplews.InvalidHandshake, match="insecure") as refused:
        simplews.connect(f"wss://localhost:{moved_tls.port}/?{token}", ssl_context=client_tls)
    errors.append(refused.value)
    messages = "\n".join(r.getMessage() for r in logs.records)
    assert f"following redirect 302 to ws://127.0.0.1:{target.port}/new?token=***" in messages
    assert f"to insecure ws://127.0.0.1:{target.port}/new?token=***" in str(refused.value)
    assert "Location" in repr(errors[-2]) and "has a fragment" in str(errors[3])
    _assert_no_secret(_all_text(logs, errors))
