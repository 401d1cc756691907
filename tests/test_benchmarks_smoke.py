"""The benchmark harness runs end to end (quick mode, one workload); no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_benchmark_harness_quick_echo_runs() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "echo", "--libs", "simplews", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "simplews" in result.stdout and "raw-tcp" in result.stdout
