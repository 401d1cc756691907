"""A user's program that uses every public name of simplews, for ``mypy --strict``.

tests/test_typing.py checks it with ``mypy --strict`` and runs part of it against a server.
"""

from __future__ import annotations

import json
from typing import FrozenSet, List, Optional, Tuple, Union

import simplews

VERSION: str = simplews.__version__

Reply = Optional[Union[simplews.Response, Tuple[int, List[Tuple[str, str]], str]]]


def process_request(request: simplews.Request) -> Reply:
    """Health check on /health; everything else upgrades."""
    if request.path_only == "/health":
        return simplews.Response(200, simplews.Headers({"Content-Type": "text/plain"}), b"ok\n")
    if request.query.get("token") != ["t0ken"]:
        return 401, [("Content-Type", "text/plain")], "no token\n"
    return None


def on_message(ws: simplews.Connection, message: Union[str, bytes]) -> None:
    ws.send(message)


def on_close(ws: simplews.Connection, code: int, reason: str) -> None:
    if code != simplews.CloseCode.NORMAL_CLOSURE:
        print("closed", code, reason, ws.state is simplews.State.CLOSED)


def on_error(ws: Optional[simplews.Connection], exc: BaseException) -> None:
    print("error on", ws.path if ws is not None else "connect", exc)


def make_server() -> simplews.Server:
    config = simplews.DeflateConfig(server_max_window_bits=12, mem_level=5)
    options = simplews.ServerOptions(process_request=process_request, port=0, compression=config, max_queue=8)
    limits: simplews.ConnectionOptions = options.connection_options()
    print(limits.max_message_size)
    return simplews.Server(on_message=on_message, options=options)


def exchange(url: str) -> List[Union[str, bytes]]:
    """Send two messages and read the replies, telling every failure apart."""
    replies: List[Union[str, bytes]] = []
    try:
        with simplews.connect(url + "?token=t0ken", headers=simplews.Headers([("X-Trace", "1")]), open_timeout=5) as ws:
            ws.send(json.dumps({"hello": VERSION}))
            ws.send(b"\x00\x01")
            replies.append(ws.recv(timeout=5))
            replies.append(ws.recv(timeout=5))
            pong = ws.ping()
            pong.wait(5)
            ws.close(simplews.CloseCode.GOING_AWAY, "done")
            print(ws.close_code, ws.close_reason, ws.closed)
    except simplews.InvalidURI as exc:
        print("bad URL", exc)
    except simplews.HostNotFound as exc:
        print("no such host", exc)
    except simplews.ConnectionRefused as exc:
        print("refused", exc)
    except simplews.ProxyError as exc:
        print("proxy", exc)
    except simplews.TLSError as exc:
        print("tls", exc)
    except simplews.ConnectError as exc:
        print("transport", exc.errno)
    except simplews.OpenTimeout as exc:
        print("open timed out", exc)
    except simplews.WebSocketTimeout as exc:
        print("timed out", exc)
    except simplews.InvalidStatus as exc:
        print("rejected with", exc.status, exc.response)
    except simplews.InvalidHeader as exc:
        print("bad header", exc)
    except simplews.NegotiationError as exc:
        print("negotiation", exc)
    except simplews.InvalidHandshake as exc:
        print("handshake", exc.status)
    except simplews.PayloadTooBig as exc:
        print("too big", exc.code)
    except simplews.RemoteProtocolError as exc:
        print("peer broke the protocol", exc.code, exc.reason)
    except simplews.LocalProtocolError as exc:
        print("our mistake", exc)
    except simplews.ProtocolError as exc:
        print("protocol", exc)
    except simplews.ConnectionClosedOK as exc:
        print("closed normally", exc.code)
    except simplews.ConnectionClosedError as exc:
        print("closed with an error", exc.code, exc.reason, exc.sent_code)
    except simplews.ConnectionClosed as exc:
        print("closed", exc.code)
    except simplews.WebSocketError as exc:
        print("other", exc)
    return replies


def stream(url: str) -> simplews.Client:
    client = simplews.Client(
        url,
        on_open=lambda ws: ws.send("hello"),
        on_message=lambda ws, message: print(message),
        on_close=on_close,
        on_error=on_error,
        reconnect=True,
        options=simplews.ClientOptions(ping_interval=20, open_timeout=5),
    )
    return client.start()


def echo_once(text: str) -> Union[str, bytes]:
    with simplews.serve(on_message=on_message, port=0) as server, simplews.connect(server.url) as ws:
        ws.send(text)
        return ws.recv(timeout=5)


def cluster(url: str) -> Tuple[simplews.Server, simplews.RedisBroadcast]:
    """A server whose broadcasts, to everyone or to a room, reach the other processes' clients through Redis."""
    try:
        broadcast = simplews.RedisBroadcast(url, channel_prefix="app", timeout=1.0)
    except simplews.MissingDependency as exc:
        raise SystemExit(str(exc))

    def on_open(ws: simplews.Connection) -> None:
        ws.join("lobby")
        rooms: FrozenSet[str] = ws.rooms
        print(rooms)

    def on_room_message(ws: simplews.Connection, message: Union[str, bytes]) -> None:
        ws.leave("lobby")
        taken: int = server.broadcast(message, room="lobby", exclude=[ws])
        print(taken, server.rooms)

    server = simplews.Server(on_open=on_open, on_message=on_room_message, port=0, broadcast=broadcast)
    try:
        server.start()
    except simplews.RedisUnavailable as exc:
        raise SystemExit(str(exc))
    sent: bool = broadcast.publish("hello", room=None)
    stats: simplews.BroadcastStats = broadcast.stats
    totals: simplews.FanoutStats = server.broadcast_stats
    bus: simplews.BroadcastBus = broadcast
    print(sent, stats.published + stats.delivered + stats.dropped, broadcast.connected, broadcast.instance_id, bus)
    print(totals.published, totals.dropped, totals.received, totals.delivered, totals.skipped)
    return server, broadcast
def routed_server() -> simplews.Server:
    """Routes behind Basic auth, with the path parameters and the user in the handler."""
    router = simplews.Router({"/": on_message})

    @router.route("/rooms/{room}")
    def room(ws: simplews.Connection) -> None:
        request = ws.request
        if request is not None:
            ws.send(f"{request.username} in {request.path_params['room']} ({request.route})")

    def dispatch(ws: simplews.Connection) -> None:
        if ws.request is not None and router.handler_for(ws.request) is room:
            room(ws)

    hooks = simplews.chain_hooks(simplews.basic_auth("chat", credentials={"ann": "s3cret"}), router.process_request)
    return simplews.Server(dispatch, process_request=hooks, port=0)


def deployed_server() -> simplews.Server:
    """A router as the handler, request hooks in order, a cookie on the 101, no Server header."""
    router = simplews.Router({"/echo/{name}": on_message})

    def cookie(request: simplews.Request, response: simplews.Response) -> None:
        response.headers.add("Set-Cookie", "seen=1")

    return simplews.Server(
        router,
        process_request=[simplews.basic_auth("chat", credentials={"ann": "s3cret"}), process_request],
        process_response=cookie,
        server_header=None,
        trusted_proxies=["127.0.0.1"],
        port=0,
    )


def resilient(url: str) -> List[Union[str, bytes]]:
    """Fresh headers per attempt, an outbox across reconnects, what was never sent at the end."""
    client = simplews.Client(
        url,
        headers=lambda: {"Authorization": "Bearer fresh"},
        on_reconnect=lambda ws: print("reconnected", ws.id),
        outbox=simplews.Outbox(max_messages=100, max_bytes=1 << 16, overflow="raise"),
        reconnect=True,
        source_address=("127.0.0.1", 0),
    )
    try:
        client.send("queued")
    except simplews.OutboxFull:
        pass
    return client.stop()
