"""Tests that need an outside program (Redis, HAProxy, a browser) skip without it, except under CI.

Mark such a test ``@pytest.mark.needs_service("redis")``; a test that uses one of
the fixtures in :data:`SERVICE_FIXTURES` is marked by itself. Without the program
the test skips and says why (on a developer's machine that may be fine), but
under CI (``CI=true`` in the environment, as ``.ci/run`` sets it) such a skip is
reported as a failure: a green CI run cannot hide a test that never ran.

Registered as a plugin by ``tests/conftest.py``.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Generator, List

import pytest

#: fixture name -> the service every test using it needs
SERVICE_FIXTURES: Dict[str, str] = {"redis_server": "redis"}


def in_ci() -> bool:
    """Whether the tests run under CI (``CI`` set to true, 1 or yes)."""
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def pytest_configure(config: pytest.Config) -> None:
    """Declare the marker."""
    config.addinivalue_line(
        "markers", "needs_service(name, ...): needs an outside program; skips without it, fails instead under CI=true"
    )


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    """Mark the tests that use a service fixture."""
    for item in items:
        for fixture, service in SERVICE_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(pytest.mark.needs_service(service))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Generator[None, Any, None]:
    """Under CI, turn the skip of a test that needs a service into a failure that says why it skipped."""
    outcome = yield
    report = outcome.get_result()
    if not (report.skipped and in_ci()) or hasattr(report, "wasxfail"):
        return
    markers = list(item.iter_markers("needs_service"))
    if not markers:
        return
    services = sorted({str(name) for marker in markers for name in marker.args})
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    reason = reason[len("Skipped: ") :] if reason.startswith("Skipped: ") else reason
    report.outcome = "failed"
    report.longrepr = f"needs {', '.join(services)} but was skipped under CI=true, which must run it: {reason}"
