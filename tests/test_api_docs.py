"""Every public name has a docstring (tests/docs/test_build.py checks that the built reference shows them all)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import public_api

import simplews.testing

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name, obj", list(public_api()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_name_has_a_docstring(name: str, obj: Any) -> None:
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_fixtures_are_documented() -> None:
    for name in ("ws_server", "ws_recording_server", "ws_client"):
        assert (getattr(simplews.testing, name).__doc__ or "").strip(), name
        assert f"``{name}``" in (simplews.testing.__doc__ or ""), f"{name} missing from the module docstring"


def test_package_is_typed() -> None:
    assert (ROOT / "simplews" / "py.typed").exists()
