"""The Windows emulation removes what Windows lacks, and the emulated CI run really runs under it."""

from __future__ import annotations

import json
import os
import select
import selectors
import socket
import subprocess
import sys
from typing import Any, Dict, List

import pytest
from emulation import EMULATE_DIR, emulated, winselect

PROBE = r"""
import json, os, select, selectors, signal, socket, sys
sock = socket.socket()
a, b = socket.socketpair()
a.sendall(b"x")
print(json.dumps({
    "shim": os.path.dirname(sys.modules["sitecustomize"].__file__),
    "marker": os.environ.get("SIMPLEWS_EMULATED"),
    "present": sorted(n for n in ("poll", "epoll", "kqueue", "devpoll") if hasattr(select, n))
        + sorted(n for n in ("AF_UNIX", "MSG_DONTWAIT") if hasattr(socket, n))
        + sorted(n for n in ("sendmsg", "recvmsg") if hasattr(socket.socket, n) or hasattr(sock, n))
        + (["SIGPIPE"] if hasattr(signal, "SIGPIPE") else []),
    "default": selectors.DefaultSelector.__name__,
    "select_based": issubclass(selectors.DefaultSelector, selectors.SelectSelector),
    "pair": [a.family == socket.AF_INET, b.recv(1).decode()],
}))
"""


def probe(env: Dict[str, str]) -> Dict[str, Any]:
    """What a fresh interpreter started with ``env`` sees."""
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def test_the_shim_removes_what_windows_lacks() -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(EMULATE_DIR), os.environ.get("PYTHONPATH", "")]))
    seen = probe(env)
    assert seen["shim"] == str(EMULATE_DIR) and seen["marker"] == "windows"
    assert seen["present"] == []
    assert seen["default"] == "LimitedSelectSelector" and seen["select_based"]
    assert seen["pair"] == [True, "x"]  # socketpair() over loopback TCP, as Windows has it


def refuses_more_than_512(factory: Any) -> None:
    """A selector from ``factory`` selects on 512 sockets and refuses a 513th as Windows' select() does."""
    socks: List[socket.socket] = []
    selector = factory()
    try:
        for _ in range(512):
            socks.append(socket.socket())
            selector.register(socks[-1], selectors.EVENT_READ)
        selector.select(0)
        socks.append(socket.socket())
        selector.register(socks[-1], selectors.EVENT_READ)
        with pytest.raises(ValueError, match="too many file descriptors in select()"):
            selector.select(0)
    finally:
        selector.close()
        for sock in socks:
            sock.close()


def test_the_limited_selector_refuses_a_513th_socket() -> None:
    refuses_more_than_512(winselect().LimitedSelectSelector)


def test_the_limited_selector_reports_readiness_like_select() -> None:
    a, b = socket.socketpair()
    selector = winselect().LimitedSelectSelector()
    try:
        selector.register(a, selectors.EVENT_READ | selectors.EVENT_WRITE)
        assert [events for _, events in selector.select(0)] == [selectors.EVENT_WRITE]
        b.sendall(b"x")
        assert [events for _, events in selector.select(5)] == [selectors.EVENT_READ | selectors.EVENT_WRITE]
        selector.modify(a, selectors.EVENT_READ)
        b.close()
        assert [events for _, events in selector.select(5)] == [selectors.EVENT_READ]  # the peer's end, as select() says
    finally:
        selector.close()
        a.close()


@pytest.mark.skipif(os.environ.get("SIMPLEWS_EMULATE") != "windows", reason="only in the emulated run (SIMPLEWS_EMULATE=windows)")
def test_this_run_is_emulated() -> None:
    """The emulated CI step asks for the emulation; fail if the shim did not load (say, another sitecustomize won)."""
    assert emulated()
    assert os.path.dirname(sys.modules["sitecustomize"].__file__ or "") == str(EMULATE_DIR)
    assert not hasattr(select, "poll") and not hasattr(select, "epoll")
    assert not hasattr(socket, "AF_UNIX") and not hasattr(socket, "MSG_DONTWAIT")
    with socket.socket() as sock:
        assert not hasattr(socket.socket, "sendmsg") and not hasattr(sock, "recvmsg")
    refuses_more_than_512(selectors.DefaultSelector)
