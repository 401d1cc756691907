"""Fixtures for running the documentation's examples (see harness.py and test_examples.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from harness import OUTSIDE_NAMES, Runner, StandIns

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="session")
def ca() -> Any:
    """The certificate authority of the stand-ins (the examples trust it through certifi)."""
    return trustme.CA()

@pytest.fixture(scope="session")
def standin_cert(ca: Any) -> Any:
    """One certificate for every name an example gives a TLS server."""
    return ca.issue_cert("localhost", "127.0.0.1", "::1", *OUTSIDE_NAMES)

@pytest.fixture
def standins(tmp_path: Path, ca: Any, standin_cert: Any) -> Iterator[StandIns]:
    """Stand-ins for one example, shut down after it."""
    found = StandIns(tmp_path, ca, standin_cert)
    try:
        yield found
    finally:
        found.close()

@pytest.fixture
def runner(tmp_path: Path, standins: StandIns) -> Iterator[Runner]:
    """Start examples; every one is gone after the test (before the stand-ins shut down)."""
    found = Runner(tmp_path, standins)
    try:
        yield found
    finally:
        found.close()
