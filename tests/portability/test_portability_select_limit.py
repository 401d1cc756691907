"""More idle connections than one select() may watch on Windows (512), all served.

The scheduler watches connections nobody reads with a selector; where that is
``select()`` (Windows), it spreads them over several. Here the selector is the
emulation's 512-socket select() (in every run, not only the emulated one),
and 600 blocking ``connect()`` connections that nobody reads each answer a
ping from an independent peer (websockets, in a process of its own).
"""

from __future__ import annotations

import os
import queue
import selectors
import subprocess
import sys
import threading
from typing import Dict, Iterator, List

import pytest
from emulation import plain_environment, winselect
from helpers import wait_for

import simplews
from simplews.keepalive import scheduler

N = 600
PEER = os.path.join(os.path.dirname(__file__), "idle_peer.py")


def open_fds() -> Dict[str, str]:
    """The descriptors this process holds, and what each is (Linux; macOS has /dev/fd)."""
    for where in ("/proc/self/fd", "/dev/fd"):
        if os.path.isdir(where):
            found = {}
            for fd in os.listdir(where):
                try:
                    found[fd] = os.readlink(os.path.join(where, fd))
                except OSError:  # the descriptor listdir() itself used
                    pass
            return found
    pytest.skip("no way to list open descriptors here")


def new_fds(before: Dict[str, str]) -> Dict[str, str]:
    """Descriptors held now that were not before."""
    return {fd: what for fd, what in open_fds().items() if before.get(fd) != what}


@pytest.fixture
def enough_fds() -> Iterator[None]:
    """N client sockets live in this process: raise the soft descriptor limit if needed."""
    try:
        import resource
    except ImportError:  # Windows has no descriptor limit of this kind
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = N + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {need}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def peer() -> Iterator[queue.Queue[str]]:
    """The peer's port, then its report lines, in a queue (read by a thread); stopped after the test."""
    proc = subprocess.Popen(
        [sys.executable, PEER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=plain_environment()
    )
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None and proc.stdin is not None
    reader = threading.Thread(target=lambda: [lines.put(line.strip()) for line in proc.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        yield lines
    finally:
        proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        reader.join(10)
        proc.stdout.close()


@pytest.mark.timeout(300)
def test_more_idle_connections_than_one_select_may_watch(
    enough_fds: None, peer: queue.Queue[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    limited = winselect().LimitedSelectSelector
    assert wait_for(lambda: not scheduler.running, timeout=30), "another test left the scheduler busy"
    monkeypatch.setattr(selectors, "DefaultSelector", limited)  # new shards only: none exists now
    refused_before = limited.refused
    fds_before = open_fds()
    port = int(peer.get(timeout=60).split()[1])
    conns: List[simplews.Connection] = []
    try:
        for i in range(N):
            conns.append(simplews.connect(f"ws://127.0.0.1:{port}/{i}", ping_interval=None, compression=None, open_timeout=60))
        # nobody reads: once idle, every connection is watched, spread over selectors of at most 512 sockets
        assert wait_for(lambda: sum(s.watched for s in scheduler._shards) == N, timeout=60)
        shards = list(scheduler._shards)
        assert len(shards) >= 2 and all(isinstance(s.selector, limited) for s in shards)
        assert max(len(s.selector.get_map()) for s in shards) <= winselect().LIMIT
        for ws in conns:
            ws.send("ping me")  # sending is not reading: each pong comes from the scheduler's idle read
        reports = [peer.get(timeout=60) for _ in range(N)]
        assert sorted(reports) == sorted(f"pong /{i}" for i in range(N))
        assert limited.refused == refused_before  # no select() call ever held too many sockets
    finally:
        for ws in conns:
            ws.close()
    assert all(ws.close_code == 1000 for ws in conns)
    assert wait_for(lambda: not scheduler.running, timeout=30)
    assert wait_for(lambda: not new_fds(fds_before), timeout=30), new_fds(fds_before)
