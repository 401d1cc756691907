"""A real redis-server of the test's own: a free port on 127.0.0.1, no persistence, and ways to hurt it.

Tests restart it, kill it, and freeze it (SIGSTOP) to see what a
:class:`simplews.RedisBroadcast` does when Redis dies or hangs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, List, Optional

import pytest

NAMES = ["redis-server", "/usr/bin/redis-server", "/usr/sbin/redis-server"]


def find_redis_server() -> Optional[str]:
    """The redis-server executable, or ``None``."""
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_redis() -> str:
    """The redis-server executable, with the Python client importable; skips the test, saying why, otherwise."""
    path = find_redis_server()
    if path is None:
        pytest.skip(
            "redis-server is not installed and could not be: install the Debian package 'redis-server' "
            "(.ci/run does so with apt-get when it runs as root)"
        )
    try:
        import redis  # noqa: F401
    except ImportError:
        pytest.skip("the redis extra is not installed: pip install -e '.[redis]' (.ci/run does)")
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """One redis-server process; :meth:`restart` keeps its port, so clients can come back to it."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.port = 0
        self.proc: Optional[subprocess.Popen] = None
        self.paused = False

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 20) -> None:
        """Start it (on a new free port the first time, the same port after) and wait until it answers PING."""
        attempts = 1 if self.port else 5
        for _ in range(attempts):
            if not self.port or attempts > 1:
                self.port = free_port()
            if self._launch(timeout):
                return
        raise RuntimeError(f"redis-server did not start: {self.log()[-2000:]}")

    def _launch(self, timeout: float) -> bool:
        command: List[str] = [
            self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.directory), "--daemonize", "no", "--logfile", str(self.directory / "redis.log"),
            "--loglevel", "notice",
        ]  # fmt: skip
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False  # the port was taken meanwhile, most likely
            if self.ping():
                return True
            time.sleep(0.02)
        self.kill()
        return False

    def ping(self, timeout: float = 1.0) -> bool:
        """Whether it answers PING right now."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def client(self) -> Any:
        """A ``redis.Redis`` client to it (closed by the caller), for CONFIG SET and the like."""
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, socket_connect_timeout=10)

    def kill(self) -> None:
        """SIGKILL: Redis dies at once, its clients see their connections reset."""
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.kill()
            self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait for it to exit (SIGKILL after 10 s)."""
        if self.proc is not None and self.proc.poll() is None:
            if self.paused:
                self.resume()
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)

    def restart(self) -> None:
        """Stop it and start it again on the same port."""
        self.stop()
        self.start()

    def pause(self) -> None:
        """SIGSTOP: Redis hangs with its sockets open (the kernel still accepts connections for it)."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def log(self) -> str:
        """What redis-server wrote to its log file."""
        path = self.directory / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def close(self) -> None:
        """Stop it for good."""
        self.stop()
