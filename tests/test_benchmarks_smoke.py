"""The benchmark harness runs end to end (quick mode, one workload); no timing is asserted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
def test_benchmark_harness_quick_echo_runs(tmp_path: Path) -> None:
    """Plain and TLS echo (certificates made at run time, raw TLS baseline), both idle-CPU rows,
    the one-shot row (simplews from a wheel in a venv) and the plot of them all."""
    plot = tmp_path / "bench.png"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "echo,echo-tls,idle-cpu,oneshot",
         "--libs", "simplews", "--rounds", "1", "--idle-window", "0.2", "--plot", str(plot)],
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
    oneshot = {row[2]: row for row in rows if row[:2] == ["oneshot", "client"]}
    assert set(oneshot) == {"raw-tcp", "simplews"}, result.stdout
    assert float(oneshot["simplews"][3]) > 0 and "editable install:" in " ".join(oneshot["simplews"]), result.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.timeout(180)
def test_benchmark_harness_quick_new_rows_run() -> None:
    """The compression, Pi-budget and latency rows, simplews with and without its accelerator
    and websockets (deflate) against the raw baseline: every cell measured, with its second figure."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "deflate-json,idle-deflate,pi,latency",
         "--libs", "simplews,simplews-nospeedups,websockets"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {tuple(line.split()[:3]): line for line in result.stdout.splitlines() if len(line.split()) > 3}
    cells = [("deflate-json", "client"), ("deflate-json", "server"), ("idle-deflate", "server"),
             ("pi-client", "client"), ("pi-server", "server"), ("latency", "server")]
    for workload, role in cells:
        for lib in ("raw-tcp", "simplews", "simplews-nospeedups", "websockets"):
            line = lines.get((workload, role, lib))
            assert line is not None and " error " not in line, result.stdout
    for workload, role, figure in (("idle-deflate", "server", "open"), ("pi-client", "client", "RSS"),
                                   ("pi-server", "server", "RSS"), ("latency", "server", "p99")):
        assert f" {figure} " in lines[(workload, role, "simplews")], result.stdout


def _git_checkout() -> bool:
    proc = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "HEAD"], capture_output=True, timeout=30)
    return proc.returncode == 0


def _worktrees() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "worktree", "list"], capture_output=True, text=True, timeout=30).stdout


@pytest.mark.timeout(180)
def test_benchmark_compare_mode_runs_and_removes_its_worktree() -> None:
    """--compare HEAD: both sides measured, each importing its own simplews; the temporary worktree is gone after."""
    if not _git_checkout():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--compare", "HEAD", "--quick", "--only", "echo", "--rounds", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=150,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "compare: simplews@HEAD: HEAD = " in result.stdout, result.stdout
    rows = {tuple(line.split()[:2]): line.split() for line in result.stdout.splitlines() if line.startswith("echo ")}
    for role in ("client", "server"):
        cells = rows[("echo", role)]
        assert float(cells[5]) > 0 and cells[-1] == "1/1", result.stdout  # new/old ratio, one sample per side
    assert "simplews-compare-" not in _worktrees()
