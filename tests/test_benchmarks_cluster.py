"""The Redis broadcast benchmark (benchmarks/cluster.py) runs end to end in quick mode; no timing is asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from redis_server import require_redis

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(180)
@pytest.mark.needs_service("redis")
def test_cluster_benchmark_quick_runs(tmp_path: Path) -> None:
    require_redis()
    out = tmp_path / "cluster.json"
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.cluster", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {row["row"]: row for row in json.loads(out.read_text())}
    assert list(rows) == ["1 process, no Redis", "1 process + Redis", "2 processes + Redis"], rows
    for row in rows.values():
        assert row["deliveries_per_s"] > 0 and row["dropped"] == 0 and row["p50_ms"] > 0, row
    assert "2 processes + Redis" in result.stdout and "deliveries/s" in result.stdout
