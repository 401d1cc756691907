"""The Sphinx documentation builds offline with no warning, and its reference shows every public name."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Set

import pytest
from harness import SANDBOX, refusals
from helpers import public_api

import simplews
import simplews.cli
import simplews.testing

pytest.importorskip("sphinx", reason="the docs extra (pip install -e '.[docs]') builds the documentation")
pytest.importorskip("furo", reason="the docs extra installs the theme")
pytest.importorskip("myst_parser", reason="the docs extra installs the Markdown parser")
from sphinx.util.inventory import InventoryFile  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [
    "getting-started/script", "getting-started/tests", "getting-started/notebook",
    "guides/threading", "guides/keepalive", "guides/reconnect", "guides/tls-and-proxies", "guides/compression",
    "guides/deployment", "guides/limits-and-security", "guides/testing",
    "reference", "changelog",
]  # fmt: skip


@pytest.fixture(scope="module")
def html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``sphinx -W --keep-going -n -b html`` (as CI runs it) into a fresh directory, with no network.

    The build runs under the examples' sandbox: any connection or name lookup beyond
    loopback is refused, recorded, and fails the build's test.
    """
    out = tmp_path_factory.mktemp("html")
    config = out.parent / "sandbox.json"
    config.write_text(json.dumps({"events": str(out.parent / "events.jsonl")}))
    command = ["-W", "--keep-going", "-n", "-q", "-b", "html", "-d", str(out.parent / "doctrees"), str(DOCS), str(out)]
    result = subprocess.run(
        [sys.executable, str(SANDBOX), str(config), "-m", "sphinx", *command], capture_output=True, text=True, timeout=240, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr[-5000:]
    assert "WARNING" not in result.stderr and "ERROR" not in result.stderr, result.stderr[-5000:]
    assert refusals(out.parent / "events.jsonl") == []
    return out


def _documented(html: Path) -> Set[str]:
    """Every object name and page the built inventory lists."""
    with open(html / "objects.inv", "rb") as f:
        inventory = InventoryFile.load(f, "", lambda base, uri: uri)
    return {name for entries in inventory.values() for name in entries}


def test_every_page_is_built(html: Path) -> None:
    documented = _documented(html)
    for page in PAGES:
        assert page in documented and (html / f"{page}.html").exists(), page


def test_reference_documents_every_public_name(html: Path) -> None:
    documented = _documented(html)
    wanted = {name for name, _ in public_api()}
    wanted |= {"simplews.__version__"} | {f"simplews.testing.{name}" for name in simplews.testing.__all__}
    wanted |= {f"simplews.cli.{name}" for name in simplews.cli.__all__}
    assert wanted - documented == set()


def test_changelog_page_is_the_changelog(html: Path) -> None:
    page = (html / "changelog.html").read_text(encoding="utf-8")
    first = next(line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## "))
    assert first[3:] in page and simplews.__version__ in page


def test_command_line_help_is_in_the_reference(html: Path) -> None:
    page = (html / "reference.html").read_text(encoding="utf-8")
    for command in ("serve", "connect"):
        assert f"usage: simplews {command}" in page
