"""``python -m benchmarks.soak``: a few seconds of it end to end, and its message check."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.soak import Checker, payload

ROOT = Path(__file__).resolve().parent.parent


def test_checker_counts_gaps_and_bad_payloads() -> None:
    """A skipped sequence number is lost; a wrong payload or an old number is garbled."""
    checker = Checker()
    for seq in (0, 1, 3):
        checker.feed(payload(seq))
    checker.feed(payload(4)[:-1] + "?")
    checker.feed(payload(2))
    checker.feed(b"0000000005")
    assert (checker.received, checker.lost, checker.garbled) == (6, 1, 3)
    assert {len(payload(seq)) for seq in range(2000)} <= set(range(100, 1025))


@pytest.mark.timeout(90)
def test_soak_runs_a_few_seconds_over_tls_without_losses() -> None:
    """Both processes exchange messages over wss://; the summary says nothing was lost or closed."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.soak", "--seconds", "4", "--rate", "500", "--interval", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=80,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "ping_interval=" in out and "ping_timeout=" in out, out
    assert out.count("client->server") >= 3, out  # progress lines and the summary
    assert "connections closed: 0" in out and out.rstrip().endswith("result: OK"), out
    for direction in ("client->server", "server->client"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"messages {direction}"))
        counts = re.search(r"sent ([\d,]+), received ([\d,]+), lost 0, garbled 0$", line)
        assert counts and int(counts[1].replace(",", "")) > 0 and counts[1] == counts[2], out
