"""The benchmark harness runs end to end (quick mode, one workload); no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_benchmark_harness_quick_echo_runs() -> None:
    """Plain and TLS echo (certificates made at run time, raw TLS baseline) and both idle-CPU rows."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "echo,echo-tls,idle-cpu", "--libs", "simplews",
         "--rounds", "1", "--idle-window", "0.2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    cells = {(row[0], row[1], row[2]) for row in rows if len(row) > 3}
    for workload, baseline in (("echo", "raw-tcp"), ("echo-tls", "raw-tls")):
        for role in ("client", "server"):
            assert {(workload, role, baseline), (workload, role, "simplews")} <= cells, result.stdout
    assert {("idle-cpu-off", "client", "raw-tcp"), ("idle-cpu-off", "client", "simplews"),
            ("idle-cpu-ka", "client", "simplews")} <= cells, result.stdout
