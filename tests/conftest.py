"""Shared fixtures: servers on port 0, a Redis of the test's own, and a check that no thread of ours leaks."""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator, List

import pytest
import services
from helpers import our_threads, wait_for
from redis_server import RedisServer, require_redis

import simplews


def running_interpreter() -> str:
    """The interpreter running the tests, as ``name-X.Y`` (``cpython-3.11``, ``pypy-3.9``)."""
    return f"{sys.implementation.name}-{sys.version_info[0]}.{sys.version_info[1]}"


def pytest_report_header(config: pytest.Config) -> str:
    """Name the interpreter in the run's header: CI runs the suite on more than one."""
    return f"interpreter: {running_interpreter()} ({platform.python_implementation()} {platform.python_version()})"


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run on another interpreter than ``SIMPLEWS_EXPECT_INTERPRETER`` names; load the plugins.

    CI and tox set ``SIMPLEWS_EXPECT_INTERPRETER`` (e.g. ``pypy-3.9``) for the environments that
    stand for a claimed Python version, so a run on the wrong interpreter fails instead of passing.
    The simplews plugin is registered here when an install predating its entry point left it
    out, and the services plugin.
    """
    expected = os.environ.get("SIMPLEWS_EXPECT_INTERPRETER")
    if expected and expected != running_interpreter():
        running = f"{running_interpreter()} ({sys.executable})"
        raise pytest.UsageError(f"SIMPLEWS_EXPECT_INTERPRETER={expected} but the tests run on {running}")
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


@pytest.fixture(scope="session")
def tracemalloc() -> ModuleType:
    """The tracemalloc module, for tests that bound the memory a peer can make us hold.

    PyPy has no tracemalloc (its garbage collector traces no allocations), so there those tests skip.
    """
    try:
        import tracemalloc as module
    except ImportError:
        pytest.skip("no tracemalloc on this interpreter (PyPy): allocations cannot be traced")
    return module


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
