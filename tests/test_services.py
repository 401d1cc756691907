"""A test that needs an outside program skips without it, but fails under CI=true (tests/services.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

import pytest

TESTS = Path(__file__).resolve().parent

SAMPLE = '''
import pytest

@pytest.mark.needs_service("haproxy")
def test_marked():
    pytest.skip("haproxy is not installed")

@pytest.fixture
def redis_server():
    pytest.skip("redis-server is not installed")

def test_by_fixture(redis_server):
    pass

def test_plain_skip():
    pytest.skip("nothing to do with a service")

@pytest.mark.needs_service("haproxy")
def test_marked_and_run():
    pass
'''


def run(tmp_path: Path, ci: str) -> subprocess.CompletedProcess:
    (tmp_path / "test_sample.py").write_text(SAMPLE)
    env: Dict[str, str] = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = ci
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "services", "-p", "no:cacheprovider", "-rA", "-q", "test_sample.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.timeout(150)
def test_outside_ci_such_a_test_skips_and_says_why(tmp_path: Path) -> None:
    result = run(tmp_path, "")
    assert result.returncode == 0, result.stdout
    assert "2 passed" not in result.stdout and "1 passed, 3 skipped" in result.stdout, result.stdout
    assert "haproxy is not installed" in result.stdout and "redis-server is not installed" in result.stdout


@pytest.mark.timeout(150)
def test_under_ci_its_skip_is_a_failure(tmp_path: Path) -> None:
    result = run(tmp_path, "true")
    assert result.returncode == 1, result.stdout
    # a skip in the test fails it; a skip in a fixture's setup shows as an error
    assert "1 failed, 1 passed, 1 skipped, 1 error" in result.stdout, result.stdout
    assert "needs haproxy but was skipped under CI=true, which must run it: haproxy is not installed" in result.stdout
    assert "needs redis but was skipped under CI=true, which must run it: redis-server is not installed" in result.stdout
    assert "SKIPPED" in result.stdout and "nothing to do with a service" in result.stdout  # other skips stay skips
