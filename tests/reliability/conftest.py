"""Settings shared by the reliability tests: a stable hypothesis profile."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

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
