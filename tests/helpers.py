"""Small helpers shared by the tests (importable as ``helpers``)."""

from __future__ import annotations

import inspect
import signal
import socket
import subprocess
import threading
import time
from typing import Any, Callable, Iterator, List, Tuple

import pytest

import simplews
import simplews.cli
import simplews.testing

#: skips a test that needs Unix sockets where the platform has none (Windows, or its emulation)
needs_unix_sockets = pytest.mark.skipif(
    not hasattr(socket, "AF_UNIX"), reason="no Unix sockets on this platform (socket.AF_UNIX missing)"
)


def our_threads() -> List[threading.Thread]:
    """Threads started by simplews that are still alive."""
    return [t for t in threading.enumerate() if t.name.startswith("simplews") and t.is_alive()]


def wait_for(predicate: Callable[[], Any], timeout: float = 5.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``timeout`` (bounded wait for tests)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def accepts(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def stop_process(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate a helper process (a proxy) and wait for it; kill it if it does not go."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGCONT)  # a paused process handles SIGTERM only once resumed
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def ipv6_loopback() -> bool:
    """Whether this machine has an IPv6 loopback to bind."""
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


def pump(src: socket.socket, dst: socket.socket) -> None:
    """Copy ``src`` to ``dst`` until ``src`` ends, then end ``dst``'s sending side (a tunnel's half)."""
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def public_api() -> Iterator[Tuple[str, Any]]:
    """(qualified name, object) for every public name and its public members."""
    for module, names in [
        (simplews, [n for n in simplews.__all__ if n != "__version__"]),
        (simplews.testing, [n for n in simplews.testing.__all__ if not n.startswith("ws_")]),
        (simplews.cli, simplews.cli.__all__),
    ]:
        for name in names:
            obj = getattr(module, name)
            yield f"{module.__name__}.{name}", obj
            if inspect.isclass(obj) and not issubclass(obj, BaseException):
                for member, value in vars(obj).items():
                    if member.startswith("_"):
                        continue
                    if isinstance(value, property) or inspect.isfunction(value):
                        yield f"{module.__name__}.{name}.{member}", value
