"""The package a release uploads: built, checked, installed into a fresh environment and run.

What a release uploads is the sdist and a pure-Python wheel (``py3-none-any``; a
``linux_x86_64`` wheel is not accepted by the package index), built with
``SIMPLEWS_PURE_PYTHON=1 python -m build``. Installing from the sdist builds the C
accelerator where a compiler exists and still succeeds where none does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from typing import Dict, List, Tuple

import pytest

import simplews

pytest.importorskip("build", reason="the build frontend is in the test extra")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[1]
VERSION = simplews.__version__
ECHO_OUTPUT = [
    "sent 'hello', got back 'hello'",
    "sent 'héllo wörld', got back 'héllo wörld'",
    "sent 'bye', got back 'bye'",
    "binary round trip: b'\\x00\\x01\\x02'",
    "closed cleanly",
]
# what a developer's checkout may hold that a build from a clean clone does not
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".tox", "build", "dist", "*.egg-info", "__pycache__", "*.so", "*.pyd",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis", "_build",
)  # fmt: skip


def _env(**extra: str) -> Dict[str, str]:
    """Our environment without what would make Python import this checkout or build a pure wheel."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "SIMPLEWS_PURE_PYTHON", "CC")}
    env.update(extra)
    return env


def _run(args: List[str], cwd: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=_env(**env), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Tuple[Path, Path]:
    """``SIMPLEWS_PURE_PYTHON=1 python -m build`` on a clean copy of the checkout: (sdist, wheel)."""
    tmp = tmp_path_factory.mktemp("release")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=_NOT_SOURCES)
    _run([sys.executable, "-m", "build", "--outdir", str(tmp / "dist"), str(source)], tmp, SIMPLEWS_PURE_PYTHON="1")
    sdist, wheel = tmp / "dist" / f"simplews-{VERSION}.tar.gz", tmp / "dist" / f"simplews-{VERSION}-py3-none-any.whl"
    assert sorted(p.name for p in (tmp / "dist").iterdir()) == [wheel.name, sdist.name]
    return sdist, wheel


def _venv(path: Path, *wheels: Path) -> Path:
    """A fresh virtual environment (no system site-packages) with ``wheels`` installed; its python."""
    _run([sys.executable, "-m", "venv", "--without-pip", str(path)], path.parent)
    python = path / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *map(str, wheels)], path.parent)
    return python


def _wheel_from_sdist(sdist: Path, out: Path, **env: str) -> Tuple[Path, str]:
    """``pip wheel`` on the sdist, as ``pip install simplews`` does from it; (the wheel, pip's output)."""
    result = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(out), str(sdist)], out.parent, **env)
    (wheel,) = out.glob("simplews-*.whl")
    return wheel, result.stdout + result.stderr


def _run_echo(python: Path, where: Path) -> List[str]:
    """examples/echo.py run from ``where`` (outside the checkout) by ``python``; its lines."""
    where.mkdir(exist_ok=True)
    shutil.copy(ROOT / "examples" / "echo.py", where / "echo.py")
    return _run([str(python), "echo.py"], where, timeout=60).stdout.splitlines()


def test_release_artifacts_are_uploadable(release: Tuple[Path, Path]) -> None:
    sdist, wheel = release
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read(f"simplews-{VERSION}.dist-info/METADATA").decode()
    assert "simplews/py.typed" in names and "simplews/__init__.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c"))], names
    assert f"Version: {VERSION}\n" in metadata and "Requires-Dist: certifi\n" in metadata
    # Windows and macOS: supported as the emulated run (tests/portability) shows their socket layer works
    for system in ("POSIX :: Linux", "Microsoft :: Windows", "MacOS"):
        assert f"Classifier: Operating System :: {system}\n" in metadata
    assert "Description-Content-Type: text/markdown\n" in metadata
    with tarfile.open(sdist) as archive:
        members = set(archive.getnames())
    for name in ("simplews/_speedups.c", "CHANGELOG.md", "README.md", "setup.py", "pyproject.toml"):
        assert f"simplews-{VERSION}/{name}" in members, name
    result = _run([sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], sdist.parent)
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_runs_the_echo_example_in_a_fresh_venv(release: Tuple[Path, Path], tmp_path: Path) -> None:
    _, wheel = release
    python = _venv(tmp_path / "venv", wheel)
    outside = tmp_path / "elsewhere"
    lines = _run_echo(python, outside)
    assert lines[0].startswith("echo server listening on ws://127.0.0.1:") and lines[1:] == ECHO_OUTPUT
    probe = "import importlib.metadata, simplews; print(simplews.__file__); print(importlib.metadata.version('simplews'))"
    where, version = _run([str(python), "-c", probe], outside).stdout.split()
    assert Path(where).is_relative_to(tmp_path / "venv" / "lib") and version == VERSION
    assert _run([str(tmp_path / "venv" / "bin" / "simplews"), "--version"], outside).stdout.strip() == f"simplews {VERSION}"


def test_sdist_installs_without_a_compiler(release: Tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = release
    wheel, log = _wheel_from_sdist(sdist, tmp_path / "wheels", CC="false")
    with zipfile.ZipFile(wheel) as archive:
        assert not [n for n in archive.namelist() if n.endswith(".so")]
    assert "building 'simplews._speedups' extension" in log  # it was tried, failed, and the build went on
    python = _venv(tmp_path / "venv", wheel)
    probe = "import simplews.frames as f; print(f.SPEEDUPS)"
    assert _run([str(python), "-c", probe], tmp_path).stdout.strip() == "False"


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None, reason="no C compiler")
def test_sdist_builds_the_accelerator_with_a_compiler(release: Tuple[Path, Path], tmp_path: Path) -> None:
    sdist, _ = release
    wheel, _ = _wheel_from_sdist(sdist, tmp_path / "wheels")
    with zipfile.ZipFile(wheel) as archive:
        assert [n for n in archive.namelist() if n.startswith("simplews/_speedups") and n.endswith(".so")]
    python = _venv(tmp_path / "venv", wheel)
    probe = (
        "import os, simplews.frames as f; data, key = os.urandom(1000), os.urandom(4);"
        "print(f.SPEEDUPS, f.apply_mask(data, key) == bytes(b ^ key[i % 4] for i, b in enumerate(data)))"
    )
    assert _run([str(python), "-c", probe], tmp_path).stdout.strip() == "True True"
    assert _run_echo(python, tmp_path / "elsewhere")[1:] == ECHO_OUTPUT


def test_changelog_names_this_version() -> None:
    headings = [line for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("## ")]
    assert headings and headings[0].split()[1] == VERSION, headings[:1]
