"""The README's HAProxy configuration in front of two simplews processes sharing one Redis."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional

import pytest
from cluster_helpers import NodeFactory
from helpers import wait_for
from redis_server import free_port

from simplews.testing import ClientFactory

pytestmark = [pytest.mark.timeout(120), pytest.mark.needs_service("haproxy")]

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_config() -> str:
    """The ``haproxy`` block of the README's deployment section."""
    text = README.read_text()
    section = text[text.index("## Deployment: several processes") :]
    return re.search(r"```haproxy\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def require_haproxy() -> str:
    """The haproxy executable; skips the test, saying why, when there is none."""
    path = shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)
    if path is None:
        pytest.skip("haproxy is not installed and could not be: install the Debian package 'haproxy' (.ci/run does so as root)")
    return path


class HAProxy:
    """``haproxy -db -f CONFIG`` in the foreground."""

    def __init__(self, executable: str, config: Path, port: int) -> None:
        check = subprocess.run([executable, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        self.port = port
        self.log = config.with_suffix(".log").open("w")
        self.proc: Optional[subprocess.Popen] = subprocess.Popen(
            [executable, "-db", "-f", str(config)], stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT
        )

    def healthy(self) -> bool:
        """Whether a health-check URL answers through it."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
                return response.status == 200
        except OSError:
            return False

    def close(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
            self.proc = None
        self.log.close()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[Dict[str, int]], HAProxy]]:
    """Start HAProxy with the README's configuration, its addresses' ports replaced; stopped after."""
    started: List[HAProxy] = []

    def start(ports: Dict[str, int]) -> HAProxy:
        config = readme_config()
        for address, port in ports.items():
            assert address in config
            config = config.replace(address, f"127.0.0.1:{port}")
        path = tmp_path / "haproxy.cfg"
        path.write_text(config)
        started.append(HAProxy(require_haproxy(), path, ports["127.0.0.1:8000"]))
        return started[-1]

    yield start
    for proxy in started:
        proxy.close()


def _port(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def test_connections_spread_over_both_processes_and_broadcasts_reach_all(
    nodes: NodeFactory, ws_client: ClientFactory, haproxy: Callable[[Dict[str, int]], HAProxy]
) -> None:
    require_haproxy()
    one, two = nodes(), nodes()
    front = free_port()
    proxy = haproxy({"127.0.0.1:8000": front, "127.0.0.1:8001": _port(one.url), "127.0.0.1:8002": _port(two.url)})
    assert wait_for(proxy.healthy, timeout=30, interval=0.1)

    clients = []
    for _ in range(6):
        ws = ws_client(f"ws://127.0.0.1:{front}/")
        ws.send("whoami")  # answered by the process behind, which then counts it among its clients
        clients.append((ws, json.loads(ws.recv(timeout=30))["pid"]))
    pids = [pid for _, pid in clients]
    assert set(pids) == {one.pid, two.pid} and pids.count(one.pid) == pids.count(two.pid) == 3, pids  # leastconn

    first = clients[0][0]
    first.send("to everyone behind the proxy")
    for ws, _ in clients:
        assert ws.recv(timeout=30) == "to everyone behind the proxy"
    first.send(b"\x00binary too")
    for ws, _ in clients:
        assert ws.recv(timeout=30) == b"\x00binary too"
    assert proxy.proc is not None and proxy.proc.poll() is None
