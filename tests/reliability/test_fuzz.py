"""A short run of the atheris fuzz targets in ``fuzz/`` (skipped when atheris is missing).

atheris needs a wheel for this platform and Python (Linux x86_64, CPython up to
3.11 at the time of writing); elsewhere the hypothesis tests in
``test_properties.py`` drive the same ``check`` functions.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from simplews.frames import encode_frame
from simplews.handshake import build_accept, build_request
from simplews.protocol import Protocol

ROOT = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("SIMPLEWS_FUZZ_RUNS", "100000"))
#: a bound on each run's wall time, so a slow machine shortens the run instead of timing out
SECONDS = int(os.environ.get("SIMPLEWS_FUZZ_SECONDS", "12"))

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("atheris") is None,
    reason="atheris is not installed (no wheel for this platform/Python); test_properties.py covers the same checks",
)


def _frame_seeds() -> list:
    """Valid streams for both sides, so the fuzzer starts past the masking rules."""
    seeds = []
    for flags in (0x00, 0x01, 0x08, 0x09, 0x03, 0x21):
        sender = Protocol(not (flags & 1), frame_size=5)
        data = b"".join(bytes(b) for m in ("héllo wörld", b"\x00" * 20, "") for b in sender.send_message(m))
        sender.send_ping(b"p")
        sender.send_close(1000, "bye")
        data += b"".join(bytes(b) for b in sender.data_to_send())
        seeds.append(bytes([flags]) + data)
    seeds.append(b"\x01" + b"".join(bytes(b) for b in encode_frame(2, b"x" * 200)))
    return seeds


def _handshake_seeds() -> list:
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    return [
        build_request("h:1", "/p?q=1", key, subprotocols=["chat", "b"], extensions="permessage-deflate; client_max_window_bits"),
        build_accept(key, subprotocol="chat", extensions="permessage-deflate; server_max_window_bits=10"),
    ]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("target, seeds", [("fuzz_frames.py", _frame_seeds), ("fuzz_handshake.py", _handshake_seeds)])
def test_fuzz_smoke_run(target: str, seeds: object, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, seed in enumerate(seeds()):  # type: ignore[operator]
        (corpus / f"seed{i}").write_bytes(seed)
    result = subprocess.run(
        [sys.executable, str(ROOT / "fuzz" / target), f"-runs={RUNS}", f"-max_total_time={SECONDS}", "-seed=1", "-max_len=4096",
         f"-artifact_prefix={tmp_path}/", str(corpus)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=170,
    )
    crashes = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("crash-", "timeout-", "oom-")))
    assert result.returncode == 0 and not crashes, (crashes, result.stderr[-4000:])
    done = re.search(r"Done (\d+) runs", result.stderr)
    assert done is not None and int(done.group(1)) > 0, result.stderr[-4000:]
