"""Shared fixtures: servers on port 0, a Redis of the test's own, and a check that no thread of ours leaks."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest
import services
from helpers import our_threads, wait_for
from redis_server import RedisServer, require_redis

import simplews


def pytest_configure(config: pytest.Config) -> None:
    """Load the simplews plugin if an install predating its entry point left it out, and the services plugin."""
    if not config.pluginmanager.has_plugin("simplews"):
        import simplews.testing

        config.pluginmanager.register(simplews.testing, "simplews")
    if not config.pluginmanager.has_plugin("simplews-services"):
        config.pluginmanager.register(services, "simplews-services")


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a simplews thread running after it ends."""
    before = set(our_threads())
    yield
    assert wait_for(lambda: not (set(our_threads()) - before), timeout=10), [
        t.name for t in set(our_threads()) - before
    ]


def _echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


@pytest.fixture
def echo_server() -> Iterator[simplews.Server]:
    """A simplews echo server on 127.0.0.1, any port, unlimited message size."""
    with simplews.serve(on_message=_echo, port=0, max_message_size=None) as server:
        yield server


@pytest.fixture
def server_factory() -> Iterator[Callable[..., simplews.Server]]:
    """Start servers with given options on port 0; all shut down after the test."""
    servers: List[simplews.Server] = []

    def start(handler: Any = None, **kwargs: Any) -> simplews.Server:
        kwargs.setdefault("port", 0)
        server = simplews.serve(handler, **kwargs)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()


@pytest.fixture(autouse=True)
def no_environment_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a proxy set in the CI environment from rerouting loopback tests (clients honour it, as curl does)."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own on a free port of 127.0.0.1, no persistence; stopped after.

    Skips without redis-server or the redis extra (a failure under CI: see ``services.py``).
    """
    server = RedisServer(require_redis(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.close()
