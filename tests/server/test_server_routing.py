"""Routing, Basic auth and hook chains over real sockets, through today's Server API.

The server is given ``process_request=`` (the router's, alone or chained after
``basic_auth``) and a dispatching ``handler(ws)`` (:func:`dispatch`), against our
client and the independent ``websocket-client`` and ``websockets`` clients.
"""

from __future__ import annotations

import base64
import hmac
import queue
from typing import Any, Callable, Optional

import pytest
import websocket  # websocket-client, an independent peer
from server_raw import get, http, upgrade_request
from websockets.exceptions import InvalidStatus as PeerInvalidStatus
from websockets.sync.client import connect as peer_connect

import simplews
from simplews import Request, Response, Router, basic_auth, chain_hooks
from simplews.handlers import Handler, resolve_handler, run_connection

USERS = {"ann": "s3cret", "zoë": "pässword"}


def dispatch(router: Router) -> Callable[[simplews.Connection], None]:
    """A ``handler(ws)`` that runs the handler the router chose for the connection, in its own style."""

    def handler(ws: simplews.Connection) -> None:
        assert ws.request is not None
        run_connection(ws, resolve_handler(router.handler_for(ws.request))())

    return handler


def describe(ws: simplews.Connection) -> str:
    """What the handler knows of its request, as one line."""
    req = ws.request
    assert req is not None
    params = ",".join(f"{k}={v}" for k, v in sorted(req.path_params.items()))
    return f"{req.route}|{params}|{req.username}"


class Room:
    """A handler class: one instance per connection."""

    def on_open(self, ws: simplews.Connection) -> None:
        self.count = 0
        ws.send("class " + describe(ws))

    def on_message(self, ws: simplews.Connection, message: Any) -> None:
        self.count += 1
        ws.send(f"{self.count}:{message}")


def make_router() -> Router:
    router = Router()

    @router.route("/echo/{name}")
    def echo(ws: simplews.Connection) -> None:
        ws.send("func " + describe(ws))
        for message in ws:
            ws.send(message)

    router.route("/rooms/{room}", Room)
    router.route("/files/{path:path}", Handler(on_open=lambda ws: ws.send("callbacks " + describe(ws))))
    return router


@pytest.fixture
def routed(server_factory: Any) -> simplews.Server:
    router = make_router()
    return server_factory(dispatch(router), process_request=router.process_request)


@pytest.fixture
def guarded(server_factory: Any) -> simplews.Server:
    """Basic auth first, then a health page, then the router."""
    router = make_router()

    def health(request: Request) -> Optional[Response]:
        return Response(200, simplews.Headers([("Content-Type", "text/plain")]), b"ok\n") if request.path_only == "/healthz" else None

    hooks = chain_hooks(basic_auth("chat", credentials=USERS), health, router.process_request)
    return server_factory(dispatch(router), process_request=hooks)


def authorization(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def with_credentials(url: str, user: str, password: str) -> str:
    return url.replace("ws://", f"ws://{user}:{password}@", 1)


# --- routing -------------------------------------------------------------------------------


def test_each_handler_style_behind_its_route(routed: simplews.Server) -> None:
    with simplews.connect(routed.url + "echo/ann%20b?x=1") as ws:
        assert ws.recv(timeout=10) == "func /echo/{name}|name=ann b|None"
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    for _ in range(2):  # a fresh Room per connection
        with simplews.connect(routed.url + "rooms/caf%C3%A9") as ws:
            assert ws.recv(timeout=10) == "class /rooms/{room}|room=café|None"
            ws.send("a")
            ws.send("b")
            assert [ws.recv(timeout=10), ws.recv(timeout=10)] == ["1:a", "2:b"]
    with simplews.connect(routed.url + "files/a%2Fb/c.txt") as ws:
        assert ws.recv(timeout=10) == "callbacks /files/{path:path}|path=a/b/c.txt|None"


@pytest.mark.parametrize("path, status", [("nope", 404), ("echo/", 404), ("echo/x/", 404), ("files/", 404)])
def test_unknown_paths_get_404(routed: simplews.Server, path: str, status: int) -> None:
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(routed.url + path)
    assert info.value.status == status
    assert info.value.response.headers["Content-Type"].startswith("text/plain")


@pytest.mark.parametrize("path", ["/echo/%zz", "/echo/%ff", "/echo/..", "/files/a/%2e%2e/b", "/echo/%00"])
def test_bad_paths_get_400_and_the_server_goes_on(routed: simplews.Server, path: str) -> None:
    status, _, body = http(routed.port, upgrade_request(path))
    assert status == 400 and body.startswith(b"bad request path")
    with simplews.connect(routed.url + "echo/still-up") as ws:
        assert ws.recv(timeout=10).endswith("name=still-up|None")


def test_plain_get_on_a_route_is_426_and_off_routes_404(routed: simplews.Server) -> None:
    assert get(routed.port, "/echo/x")[0] == 426
    assert get(routed.port, "/nope")[0] == 404


def test_websocket_client_through_the_router(routed: simplews.Server) -> None:
    ws = websocket.create_connection(routed.url + "rooms/%E2%98%83", timeout=10)
    try:
        assert ws.recv() == "class /rooms/{room}|room=☃|None"
        ws.send("x")
        assert ws.recv() == "1:x"
    finally:
        ws.close()
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(routed.url + "rooms/", timeout=10)
    assert info.value.status_code == 404


def test_websockets_client_through_the_router(routed: simplews.Server) -> None:
    with peer_connect(routed.url + "echo/peer", open_timeout=10, proxy=None) as ws:
        assert ws.recv(timeout=10) == "func /echo/{name}|name=peer|None"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=10) == b"\x00\x01"
    with pytest.raises(PeerInvalidStatus) as info:
        peer_connect(routed.url + "nope", open_timeout=10, proxy=None)
    assert info.value.response.status_code == 404


# --- Basic auth, chained before the router -----------------------------------------------------


def test_401_with_the_challenge_for_missing_or_wrong_credentials(guarded: simplews.Server) -> None:
    for url in [guarded.url + "echo/x", with_credentials(guarded.url + "echo/x", "ann", "wrong"),
                with_credentials(guarded.url + "echo/x", "bob", "s3cret")]:  # fmt: skip
        with pytest.raises(simplews.InvalidStatus) as info:
            simplews.connect(url)
        assert info.value.status == 401
        assert info.value.response.headers["WWW-Authenticate"] == 'Basic realm="chat", charset="UTF-8"'


def test_good_credentials_reach_the_route_with_the_username(guarded: simplews.Server) -> None:
    with simplews.connect(with_credentials(guarded.url + "rooms/r1", "ann", "s3cret")) as ws:
        assert ws.recv(timeout=10) == "class /rooms/{room}|room=r1|ann"
    with simplews.connect(guarded.url + "echo/e", headers={"Authorization": authorization("zoë", "pässword")}) as ws:
        assert ws.recv(timeout=10) == "func /echo/{name}|name=e|zoë"


def test_the_chain_answers_in_order(guarded: simplews.Server) -> None:
    # a stranger learns nothing about the routes or the page: auth answers first
    assert get(guarded.port, "/nope")[0] == 401
    assert get(guarded.port, "/healthz")[0] == 401
    good = f"Authorization: {authorization('ann', 's3cret')}\r\n"
    status, _, body = get(guarded.port, "/healthz", extra=good)
    assert (status, body) == (200, b"ok\n")
    assert get(guarded.port, "/nope", extra=good)[0] == 404
    assert http(guarded.port, upgrade_request("/echo/%zz", extra=good))[0] == 400
    with pytest.raises(simplews.InvalidStatus) as info:
        simplews.connect(with_credentials(guarded.url + "nope", "ann", "s3cret"))
    assert info.value.status == 404


def test_websocket_client_with_basic_auth(guarded: simplews.Server) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as info:
        websocket.create_connection(guarded.url + "echo/x", timeout=10, header=[f"Authorization: {authorization('ann', 'nope')}"])
    assert info.value.status_code == 401
    assert info.value.resp_headers["www-authenticate"] == 'Basic realm="chat", charset="UTF-8"'
    ws = websocket.create_connection(guarded.url + "echo/x", timeout=10, header=[f"Authorization: {authorization('ann', 's3cret')}"])
    try:
        assert ws.recv() == "func /echo/{name}|name=x|ann"
    finally:
        ws.close()


def test_websockets_client_with_basic_auth(guarded: simplews.Server) -> None:
    with pytest.raises(PeerInvalidStatus) as info:
        peer_connect(guarded.url + "rooms/r", open_timeout=10, proxy=None)
    assert info.value.response.status_code == 401
    assert info.value.response.headers["WWW-Authenticate"] == 'Basic realm="chat", charset="UTF-8"'
    with peer_connect(with_credentials(guarded.url + "rooms/r", "ann", "s3cret"), open_timeout=10, proxy=None) as ws:
        assert ws.recv(timeout=10) == "class /rooms/{room}|room=r|ann"


def test_compare_digest_guards_the_real_server(guarded: simplews.Server, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: queue.Queue[bytes] = queue.Queue()
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.put(a)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    with simplews.connect(with_credentials(guarded.url + "echo/x", "ann", "s3cret")) as ws:
        assert ws.recv(timeout=10).endswith("|ann")
    assert calls.get(timeout=1) == b"s3cret" and calls.empty()


# --- the router as the server's handler, behind a sequence of request hooks ----------------------


def health(request: Request) -> Optional[Response]:
    """A plain page at /healthz."""
    return Response(200, simplews.Headers([("Content-Type", "text/plain")]), b"ok\n") if request.path_only == "/healthz" else None


@pytest.fixture
def composed(server_factory: Any) -> simplews.Server:
    """``Server(router, process_request=[basic_auth, page])``: auth, then the page, then the routes."""
    return server_factory(make_router(), process_request=[basic_auth("chat", credentials=USERS), health])


def test_router_as_handler_runs_each_style(composed: simplews.Server) -> None:
    good = {"Authorization": authorization("ann", "s3cret")}
    with simplews.connect(composed.url + "echo/a%20b", headers=good) as ws:
        assert ws.recv(timeout=10) == "func /echo/{name}|name=a b|ann"
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    for _ in range(2):
        with simplews.connect(composed.url + "rooms/x", headers=good) as ws:
            assert ws.recv(timeout=10) == "class /rooms/{room}|room=x|ann"
            ws.send("m")
            assert ws.recv(timeout=10) == "1:m"
    with simplews.connect(composed.url + "files/a/b", headers=good) as ws:
        assert ws.recv(timeout=10) == "callbacks /files/{path:path}|path=a/b|ann"
    assert composed.router is not None and composed.router.patterns[0] == "/echo/{name}"


def test_sequence_of_hooks_first_answer_wins(composed: simplews.Server) -> None:
    good = f"Authorization: {authorization('ann', 's3cret')}\r\n"
    assert get(composed.port, "/healthz")[0] == 401  # auth answers before the page
    assert get(composed.port, "/nope")[0] == 401  # and before the router's 404
    assert get(composed.port, "/healthz", extra=good)[:3:2] == (200, b"ok\n")
    assert get(composed.port, "/nope", extra=good)[0] == 404
    assert http(composed.port, upgrade_request("/echo/%zz", extra=good))[0] == 400
    with pytest.raises(PeerInvalidStatus) as info:
        peer_connect(composed.url + "rooms/r", open_timeout=10, proxy=None)
    assert info.value.response.status_code == 401
    with peer_connect(with_credentials(composed.url + "rooms/r", "zoë", "pässword"), open_timeout=10, proxy=None) as ws:
        assert ws.recv(timeout=10) == "class /rooms/{room}|room=r|zoë"


def test_callbacks_beside_a_router_complete_every_route() -> None:
    failing = Router()

    def boom(ws: simplews.Connection, message: Any) -> None:
        raise RuntimeError(f"boom {message}")

    failing.route("/boom/{n}", Handler(on_message=boom))  # no on_error of its own: the server's applies

    errors: queue.Queue[str] = queue.Queue()
    with simplews.serve(failing, port=0, on_error=lambda ws, exc: errors.put(f"{ws.request.route}: {exc}")) as server:
        with simplews.connect(server.url + "boom/1") as ws:
            ws.send("now")
            assert errors.get(timeout=10) == "/boom/{n}: boom now"

