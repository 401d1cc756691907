"""A Client's connection attempts: headers from a function (once per attempt, redirect rules applied) and on_reconnect."""

from __future__ import annotations

import itertools
import queue
from typing import Any, Dict, List, Optional

from helpers import wait_for

import simplews
from simplews import Request, Response


def recording(server_factory: Any, seen: queue.Queue[Dict[str, Optional[str]]], **kwargs: Any) -> simplews.Server:
    """A server that records the path and Authorization of every request, and closes each connection once open."""

    def record(request: Request) -> Optional[Response]:
        seen.put({"path": request.path, "authorization": request.headers.get("Authorization")})
        return None

    kwargs.setdefault("on_open", lambda ws: ws.close(1012, "restart"))
    return server_factory(process_request=[record, *kwargs.pop("process_request", [])], **kwargs)


def test_headers_function_is_called_once_per_attempt(server_factory: Any) -> None:
    seen: queue.Queue[Dict[str, Optional[str]]] = queue.Queue()
    server = recording(server_factory, seen)
    tokens = itertools.count(1)
    calls: List[int] = []

    def headers() -> Dict[str, str]:
        calls.append(1)
        return {"Authorization": f"Bearer t{next(tokens)}"}

    client = simplews.Client(server.url, headers=headers, reconnect=True, reconnect_delay=0.01, reconnect_max_delay=0.02)
    with client:
        assert wait_for(lambda: client.connections_opened >= 3, timeout=20)
    got = [seen.get(timeout=10)["authorization"] for _ in range(3)]
    assert got == ["Bearer t1", "Bearer t2", "Bearer t3"]  # a fresh token on every attempt
    assert len(calls) >= client.connections_opened


def test_headers_function_once_per_attempt_across_redirects(server_factory: Any) -> None:
    seen: queue.Queue[Dict[str, Optional[str]]] = queue.Queue()
    other = recording(server_factory, seen, on_open=lambda ws: ws.send("there"))
    here = recording(
        server_factory,
        seen,
        on_open=lambda ws: ws.send("here"),
        process_request=[
            lambda r: (302, [("Location", "/final")], b"") if r.path == "/start" else None,
            lambda r: (307, [("Location", other.url + "away")], b"") if r.path == "/elsewhere" else None,
        ],
    )
    calls: List[int] = []

    def headers() -> Dict[str, str]:
        calls.append(1)
        return {"Authorization": f"Bearer n{len(calls)}", "X-Trace": "1"}

    with simplews.connect(here.url + "start", headers=headers) as ws:
        assert ws.recv(timeout=10) == "here"
    # the same origin: one call, the same token on both hops
    assert [seen.get(timeout=10) for _ in range(2)] == [
        {"path": "/start", "authorization": "Bearer n1"}, {"path": "/final", "authorization": "Bearer n1"}]  # fmt: skip
    with simplews.connect(here.url + "elsewhere", headers=headers) as ws:
        assert ws.recv(timeout=10) == "there"
    # to another origin the credentials of what the function returned are dropped; still one call
    assert [seen.get(timeout=10) for _ in range(2)] == [
        {"path": "/elsewhere", "authorization": "Bearer n2"}, {"path": "/away", "authorization": None}]  # fmt: skip
    assert len(calls) == 2


def test_on_reconnect_runs_before_on_open_for_each_replacement(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.close(1012, "restart"))
    events: queue.Queue[Any] = queue.Queue()
    client = simplews.Client(
        server.url,
        on_open=lambda ws: events.put(("open", ws)),
        on_reconnect=lambda ws: events.put(("reconnect", ws)),
        reconnect=True,
        reconnect_delay=0.01,
        reconnect_max_delay=0.02,
    )
    with client:
        got = [events.get(timeout=20) for _ in range(5)]
    kinds = [kind for kind, _ in got]
    assert kinds == ["open", "reconnect", "open", "reconnect", "open"]
    assert got[1][1] is got[2][1] and got[0][1] is not got[2][1]  # told about the new connection, before its on_open


def test_on_reconnect_errors_go_to_on_error_and_on_open_still_runs(server_factory: Any) -> None:
    server = server_factory(on_open=lambda ws: ws.close(1012, "restart"))
    errors: queue.Queue[BaseException] = queue.Queue()
    opened: List[simplews.Connection] = []

    def broken(ws: simplews.Connection) -> None:
        raise RuntimeError("reconnect bug")

    client = simplews.Client(server.url, on_open=opened.append, on_reconnect=broken, on_error=lambda ws, exc: errors.put(exc),
                             reconnect=True, reconnect_delay=0.01, reconnect_max_delay=0.02)  # fmt: skip
    with client:
        assert str(errors.get(timeout=20)) == "reconnect bug"
        assert wait_for(lambda: len(opened) >= 2, timeout=20)
