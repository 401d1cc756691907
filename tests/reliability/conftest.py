"""Settings and fixtures shared by the reliability tests: a stable hypothesis profile, a server
that records what each connection saw."""

from __future__ import annotations

from typing import Iterator, Tuple

import pytest
from hypothesis import HealthCheck, settings
from rawpeers import PROPERTY_MAX_FRAGMENTS, PROPERTY_MAX_SIZE, Observed

import simplews

# Derandomized and database-less: CI sees the same examples on every run, and a
# failure found once is kept as an explicit regression test, not a cache entry.
settings.register_profile(
    "reliability",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=200,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def observed_server() -> Iterator[Tuple[simplews.Server, Observed, simplews.Connection]]:
    """A server for many hypothesis examples, what it observed, and a healthy client connected to it."""
    observed = Observed()
    server = simplews.serve(
        observed, port=0, max_message_size=PROPERTY_MAX_SIZE, max_fragments=PROPERTY_MAX_FRAGMENTS
    )
    try:
        with simplews.connect(server.url + "healthy") as healthy:
            yield server, observed, healthy
    finally:
        server.shutdown()
