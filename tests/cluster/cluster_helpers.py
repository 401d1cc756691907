"""Helpers of the Redis broadcast tests: an inbox for ``deliver``, and server processes running node.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable, List, Optional, Tuple

from example_procs import ExampleProcess

import simplews

NODE = Path(__file__).with_name("node.py")
Item = Tuple[Any, Optional[str]]


class Inbox:
    """Records every ``(message, room)`` handed to it; tests wait for a count (bounded)."""

    def __init__(self) -> None:
        self.items: List[Item] = []
        self._changed = threading.Condition()

    def __call__(self, message: Any, room: Optional[str]) -> None:
        with self._changed:
            self.items.append((message, room))
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 30) -> List[Item]:
        """The first ``count`` items, once that many arrived; fails after ``timeout``."""
        with self._changed:
            arrived = self._changed.wait_for(lambda: len(self.items) >= count, timeout)
            assert arrived, f"{len(self.items)} of {count} deliveries arrived: {self.items[-5:]!r}"
            return self.items[:count]

    def messages(self) -> List[Any]:
        """The messages so far, without rooms."""
        with self._changed:
            return [message for message, _ in self.items]


BroadcastFactory = Callable[..., Tuple[simplews.RedisBroadcast, Inbox]]


class Node:
    """A server process running ``node.py`` (see its docstring)."""

    def __init__(self, redis_url: str, *args: str) -> None:
        self.process = ExampleProcess(str(NODE), "--redis", redis_url, *args)
        try:
            match = self.process.wait_for_line(r"serving (ws://\S+) pid (\d+)")
        except BaseException:
            self.process.close()
            raise
        self.url, self.pid = match.group(1), int(match.group(2))

    def stats(self, timeout: float = 30) -> dict:
        """The node's broadcast counters and ``connected``, asked over a WebSocket."""
        with simplews.connect(self.url, open_timeout=timeout) as ws:
            ws.send("stats")
            return json.loads(ws.recv(timeout=timeout))

    def stop(self) -> int:
        """SIGINT; the exit code."""
        return self.process.stop()

    def close(self) -> None:
        """Stop it and close its pipes."""
        self.process.close()


NodeFactory = Callable[..., Node]
