"""examples/echo.py runs as it is and prints every round trip."""

from __future__ import annotations

import subprocess
import sys

from example_procs import EXAMPLES, example_env


def test_echo_example_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "echo.py")], capture_output=True, text=True, env=example_env(), timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("echo server listening on ws://127.0.0.1:")
    assert lines[1:] == [
        "sent 'hello', got back 'hello'",
        "sent 'héllo wörld', got back 'héllo wörld'",
        "sent 'bye', got back 'bye'",
        "binary round trip: b'\\x00\\x01\\x02'",
        "closed cleanly",
    ]
