"""The public API type-checks strictly in users' code, and mypy catches users' mistakes with it."""

from __future__ import annotations

import ast
import importlib.util
import re
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Set, Tuple

import pytest

import simplews

pytest.importorskip("mypy", reason="mypy is in the test extra")

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).with_name("typing")
USER_CODE = SAMPLES / "user_code.py"
WRONG_CODE = SAMPLES / "wrong_code.py"

# As a user's project sees an installed package: strict for their code; simplews's own
# modules are followed for their types but their internals are not the user's to fix.
CONFIG = """\
[mypy]
strict = True
warn_unused_configs = True

[mypy-simplews.*]
follow_imports = silent
"""


def _names_used(path: Path) -> Set[str]:
    """Every ``simplews.NAME`` the sample refers to."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "simplews"
    }


def _expected_errors(path: Path) -> Set[Tuple[int, str]]:
    """``(line, code)`` of every ``# E: code`` mark."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {(number, match.group(1)) for number, line in enumerate(lines, 1) for match in re.finditer(r"# E: ([\w-]+)$", line)}


@pytest.fixture(scope="module")
def mypy_output(tmp_path_factory: pytest.TempPathFactory) -> str:
    """mypy --strict on both samples at once, with this checkout's simplews (one run: a few seconds)."""
    tmp = tmp_path_factory.mktemp("mypy")
    config = tmp / "mypy.ini"
    config.write_text(CONFIG)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(config), "--cache-dir", str(tmp / "cache"),
         "--no-error-summary", "--show-error-codes", str(USER_CODE), str(WRONG_CODE)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


def test_user_code_uses_every_public_name() -> None:
    assert set(simplews.__all__) <= _names_used(USER_CODE), set(simplews.__all__) - _names_used(USER_CODE)


def test_user_code_passes_mypy_strict(mypy_output: str) -> None:
    errors = [line for line in mypy_output.splitlines() if line.startswith(str(USER_CODE.relative_to(ROOT)))]
    assert errors == []
    assert "simplews/" not in mypy_output  # simplews was found (silenced, not missing)
    assert "import-not-found" not in mypy_output and "import-untyped" not in mypy_output


def test_mistakes_are_reported_where_marked(mypy_output: str) -> None:
    prefix = str(WRONG_CODE.relative_to(ROOT)) + ":"
    found = set()
    for line in mypy_output.splitlines():
        match = re.match(re.escape(prefix) + r"(\d+): error: .*\[([\w-]+)\]$", line)
        if match:
            found.add((int(match.group(1)), match.group(2)))
    assert found == _expected_errors(WRONG_CODE), mypy_output
    on_error_line = next(n for n, code in sorted(found) if "on_error=" in WRONG_CODE.read_text().splitlines()[n - 1])
    assert f'{prefix}{on_error_line}: error: Argument "on_error" to "Client"' in mypy_output  # ws may be None


def test_user_code_runs() -> None:
    spec = importlib.util.spec_from_file_location("user_code", USER_CODE)
    assert spec is not None and spec.loader is not None
    user_code = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(user_code)
    with user_code.make_server().start() as server:
        with urllib.request.urlopen("http" + server.url[2:] + "health", timeout=10) as response:
            assert response.read() == b"ok\n"
        assert user_code.exchange(server.url) == [f'{{"hello": "{simplews.__version__}"}}', b"\x00\x01"]
    assert user_code.echo_once("hi") == "hi"
