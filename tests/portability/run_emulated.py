"""Run the I/O part of the suite once more under the Windows emulation (CI, and ``tox -e emulate-windows``).

Usage: ``python tests/portability/run_emulated.py [pytest options]``. The
subset covers connections, TLS, keepalive, the server and its shutdown, the
client, and the reliability tests that run over sockets.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
from typing import List

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIM = ROOT / "tests" / "portability" / "emulate_windows"

SUBSET = [
    "tests/portability",
    "tests/client",
    "tests/server/test_server_broadcast.py",
    "tests/server/test_server_http.py",
    "tests/server/test_server_many.py",
    "tests/server/test_server_policies.py",
    "tests/server/test_server_shutdown.py",
    "tests/server/test_server_tls_slow.py",
    "tests/server/test_server_transports.py",
    "tests/reliability/test_concurrency.py",
    "tests/reliability/test_faults.py",
    "tests/reliability/test_limits.py",
    "tests/reliability/test_writer_role.py",
    "tests/test_handlers.py",
    "tests/test_shutdown_race.py",
]
# websockets' sync server takes its POSIX path here (sys.platform is still linux) with a select()
# selector, a mix no real platform has: its shutdown can then select() on its closed socket.
DESELECT = [
    "tests/client/test_handshake_options.py::test_response_headers_and_subprotocol_from_an_independent_server",
    "tests/client/test_outbox.py::test_outbox_drains_in_order_after_on_open_and_later_sends_queue_behind",
]


def main(argv: List[str]) -> int:
    """Run pytest on the subset with the shim first on PYTHONPATH; return its exit status."""
    env = dict(os.environ, SIMPLEWS_EMULATE="windows")
    env["PYTHONPATH"] = os.pathsep.join([str(SHIM), str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    command = [sys.executable, "-m", "pytest", *SUBSET, *(f"--deselect={test}" for test in DESELECT), *argv]
    return subprocess.call(command, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
