"""Every public name is documented, and the reference can be generated from the docstrings."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path
from typing import Any, Iterator, Tuple

import pytest

import simplews
import simplews.cli
import simplews.testing

ROOT = Path(__file__).resolve().parents[1]


def _public() -> Iterator[Tuple[str, Any]]:
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


@pytest.mark.parametrize("name, obj", list(_public()), ids=lambda v: v if isinstance(v, str) else "")
def test_public_name_has_a_docstring(name: str, obj: Any) -> None:
    assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_fixtures_are_documented() -> None:
    for name in ("ws_server", "ws_recording_server", "ws_client"):
        assert (getattr(simplews.testing, name).__doc__ or "").strip(), name
        assert f"``{name}``" in (simplews.testing.__doc__ or ""), f"{name} missing from the module docstring"


def test_package_is_typed() -> None:
    assert (ROOT / "simplews" / "py.typed").exists()


def test_reference_generates_with_every_public_name() -> None:
    spec = importlib.util.spec_from_file_location("gen_reference", ROOT / "docs" / "gen_reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.render()
    for name in simplews.__all__:
        if name != "__version__":
            assert f"`simplews.{name}`" in text, f"{name} missing from the generated reference"
    assert "(undocumented)" not in text
