"""``--plot``: the bar charts are drawn from a results set (no measurement is run)."""

from __future__ import annotations

from pathlib import Path
from typing import List

import pytest

from benchmarks.plot import by_workload, uses_ratios, write_plot
from benchmarks.report import Row, compute_ratios
from benchmarks.workloads import CLIENT, SERVER, WORKLOADS_BY_NAME

pytest.importorskip("matplotlib")


def _row(workload: str, role: str, lib: str, *samples: float) -> Row:
    row = Row(WORKLOADS_BY_NAME[workload], role, lib)
    row.samples.extend(samples)
    row.cpu_samples.extend(1.0 for _ in samples)
    return row


def _fake_results() -> List[Row]:
    rows = []
    for role in (CLIENT, SERVER):
        rows += [_row("echo", role, "raw-tcp", 40_000, 42_000), _row("echo", role, "simplews", 30_000),
                 _row("echo", role, "websockets", 20_000)]
    rows += [_row("echo-tls", CLIENT, "raw-tcp", 30_000), _row("echo-tls", CLIENT, "simplews", 20_000)]
    rows += [_row("import", CLIENT, "raw-tcp", 0.5), _row("import", CLIENT, "simplews", 12.0)]
    failed = Row(WORKLOADS_BY_NAME["stream"], CLIENT, "simplews", errors=["boom"])
    rows.append(failed)
    compute_ratios(rows, "raw-tcp")
    return rows


@pytest.mark.timeout(60)
def test_plot_writes_a_png_with_one_chart_per_measured_workload(tmp_path: Path) -> None:
    """Ratio workloads plot ratios, ratio-less ones the metric; the file is a real PNG."""
    rows = _fake_results()
    groups = by_workload(rows)
    assert uses_ratios(groups["echo"]) and uses_ratios(groups["echo-tls"])
    assert not uses_ratios(groups["import"])
    path = tmp_path / "bench.png"
    write_plot(rows, str(path))
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 10_000


@pytest.mark.timeout(30)
def test_plot_refuses_a_results_set_without_any_measurement(tmp_path: Path) -> None:
    """Only failed cells: an error, not an empty picture."""
    rows = [Row(WORKLOADS_BY_NAME["echo"], CLIENT, "simplews", errors=["boom"])]
    with pytest.raises(ValueError):
        write_plot(rows, str(tmp_path / "none.png"))
    assert not (tmp_path / "none.png").exists()
