"""Fixtures for broadcasting through Redis: instances in this process, and server processes."""

from __future__ import annotations

import itertools
from typing import Any, Iterator, List, Tuple

import pytest
from cluster_helpers import BroadcastFactory, Inbox, Node, NodeFactory
from redis_server import RedisServer

import simplews

_prefixes = itertools.count(1)


@pytest.fixture
def broadcasts(redis_server: RedisServer) -> Iterator[BroadcastFactory]:
    """Make started :class:`RedisBroadcast` instances on the test's Redis, each with an :class:`Inbox`; stopped after.

    Keyword arguments go to ``RedisBroadcast``; all share one channel prefix. Fault
    tests get short timeouts and backoff unless they say otherwise.
    """
    made: List[simplews.RedisBroadcast] = []
    prefix = f"test{next(_prefixes)}"

    def make(**kwargs: Any) -> Tuple[simplews.RedisBroadcast, Inbox]:
        kwargs.setdefault("channel_prefix", prefix)
        kwargs.setdefault("reconnect_delay", 0.05)
        kwargs.setdefault("reconnect_max_delay", 0.5)
        broadcast = simplews.RedisBroadcast(redis_server.url, **kwargs)
        inbox = Inbox()
        broadcast.start(inbox)
        made.append(broadcast)
        return broadcast, inbox

    yield make
    for broadcast in made:
        broadcast.stop()


@pytest.fixture
def nodes(redis_server: RedisServer) -> Iterator[NodeFactory]:
    """Start ``node.py`` server processes sharing the test's Redis; all stopped after."""
    started: List[Node] = []
    prefix = f"nodes{next(_prefixes)}"

    def start(*args: str) -> Node:
        node = Node(redis_server.url, "--prefix", prefix, *args)
        started.append(node)
        return node

    yield start
    for node in started:
        node.close()
