"""The pytest plugin (simplews.testing): its fixtures, used here as a user would."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, List

import pytest
from helpers import wait_for

import simplews
from simplews.testing import ClientFactory, RecordingServer, ServerFactory

ROOT = Path(__file__).resolve().parents[1]


def _pytest11() -> List[Any]:
    """The installed pytest11 entry points (the API differs before Python 3.10)."""
    eps = importlib.metadata.entry_points()
    if hasattr(eps, "select"):
        return list(eps.select(group="pytest11"))
    return list(eps.get("pytest11", []))  # type: ignore[attr-defined]


def _entry_point_installed() -> bool:
    """Whether the installed metadata registers simplews.testing under pytest11."""
    return any(ep.name == "simplews" and ep.value == "simplews.testing" for ep in _pytest11())


def test_ws_server_starts_on_port_0_with_callbacks(ws_server: ServerFactory, ws_client: ClientFactory) -> None:
    server = ws_server(on_message=lambda ws, message: ws.send(message.upper()))
    assert server.port != 0 and server.url == f"ws://127.0.0.1:{server.port}/"
    ws = ws_client(server)
    ws.send("hello")
    assert ws.recv(timeout=10) == "HELLO"


def test_ws_server_takes_a_handler_function_and_options(ws_server: ServerFactory, ws_client: ClientFactory) -> None:
    def handler(ws: simplews.Connection) -> None:
        for message in ws:
            ws.send(f"{ws.subprotocol}:{message}")

    server = ws_server(handler, subprotocols=["chat"])
    ws = ws_client(server.url, subprotocols=["chat"])
    ws.send("x")
    assert ws.recv(timeout=10) == "chat:x"


def test_ws_server_shuts_everything_down_even_with_clients_open() -> None:
    factory = ServerFactory()
    server = factory(on_message=lambda ws, m: ws.send(m))
    ws = simplews.connect(server.url)
    assert wait_for(lambda: server.connections, timeout=30)  # registered, not just handshaken
    factory.close()
    assert factory.servers == []
    with pytest.raises(simplews.ConnectionClosed):
        ws.recv(timeout=10)
    assert ws.close_code == 1001


def test_recording_server_records_handshakes_messages_and_closes(
    ws_recording_server: RecordingServer, ws_client: ClientFactory
) -> None:
    ws = ws_client(ws_recording_server, "feed?room=7", headers={"X-Token": "secret"}, subprotocols=["v1"])
    ws.send("one")
    ws.send(b"\x00two")
    assert ws_recording_server.wait_for_messages(2) == ["one", b"\x00two"]
    request = ws_recording_server.wait_for_connections(1)[0]
    assert request.path == "/feed?room=7" and request.query == {"room": ["7"]}
    assert request.headers["X-Token"] == "secret"
    assert ws_recording_server.received[0].connection.path == "/feed?room=7"
    ws.close(4000, "done")
    assert ws_recording_server.wait_for_closes(1) == [(4000, "done")]


def test_recording_server_can_reply_and_broadcast(ws_client: ClientFactory) -> None:
    with RecordingServer(on_message=lambda ws, m: ws.send(f"echo {m}")) as server:
        first, second = ws_client(server), ws_client(server)
        server.wait_for_connections(2)
        first.send("hi")
        assert first.recv(timeout=10) == "echo hi"
        assert server.broadcast("all") == 2
        assert first.recv(timeout=10) == "all" and second.recv(timeout=10) == "all"


def test_recording_server_records_json_and_pings(ws_recording_server: RecordingServer, ws_client: ClientFactory) -> None:
    ws = ws_client(ws_recording_server)
    ws.send_json({"temp": 21.5})
    assert ws.ping(b"beat").wait(10)
    ws.send("not json")
    assert ws_recording_server.wait_for_pings(1) == [b"beat"]
    with pytest.raises(simplews.InvalidMessage, match="not JSON"):
        ws_recording_server.wait_for_json(2)
    assert ws_recording_server.wait_for_json(1) == [{"temp": 21.5}]


def test_recording_server_shuts_down_with_a_chosen_code(ws_client: ClientFactory) -> None:
    server = RecordingServer()
    ws = ws_client(server)
    server.wait_for_connections(1)
    server.shutdown(code=1012, reason="restart")
    with pytest.raises(simplews.ConnectionClosed) as info:
        ws.recv(timeout=10)
    assert (info.value.code, info.value.reason) == (1012, "restart")


def test_recording_server_wait_times_out_with_what_arrived(ws_recording_server: RecordingServer, ws_client: ClientFactory) -> None:
    ws_client(ws_recording_server).send("only one")
    ws_recording_server.wait_for_messages(1)
    with pytest.raises(simplews.WebSocketTimeout, match="only one"):
        ws_recording_server.wait_for_messages(2, timeout=0.2)


def test_ws_client_closes_its_connections() -> None:
    with RecordingServer() as server:
        factory = ClientFactory()
        factory(server).send("x")
        factory.close()
        assert server.wait_for_closes(1) == [(1000, "")]


def _run_pytest(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    """Run pytest on one test file in a fresh interpreter, as a user's suite would."""
    (tmp_path / "test_user.py").write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    args: List[Any] = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"]
    if not _entry_point_installed():
        args[3:3] = ["-p", "simplews.testing"]
    return subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(90)
def test_fixtures_work_in_a_users_suite(tmp_path: Path) -> None:
    result = _run_pytest(
        tmp_path,
        """
        def test_echo(ws_server, ws_client):
            server = ws_server(on_message=lambda ws, m: ws.send(m))
            ws = ws_client(server)
            ws.send("ping")
            assert ws.recv(timeout=10) == "ping"

        def test_recording(ws_recording_server, ws_client):
            ws_client(ws_recording_server, headers={"Authorization": "Bearer t"}).send("hello")
            assert ws_recording_server.wait_for_messages(1) == ["hello"]
            assert ws_recording_server.handshakes[0].headers["Authorization"] == "Bearer t"

        def test_failure_is_reported(ws_recording_server):
            assert ws_recording_server.messages == ["never sent"]
        """,
    )
    assert "1 failed, 2 passed" in result.stdout, result.stdout + result.stderr
    assert "assert [] == ['never sent']" in result.stdout


def test_plugin_is_registered_through_its_entry_point() -> None:
    if not _entry_point_installed():
        pytest.skip("the installed simplews metadata predates the pytest11 entry point: run `pip install -e .` again")
    ep = next(ep for ep in _pytest11() if ep.name == "simplews")
    assert ep.load() is sys.modules["simplews.testing"]
