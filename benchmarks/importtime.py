"""Workload "import": how long a client's imports take in a fresh interpreter.

Measured with ``python -X importtime``: a marker is written to stderr just
before the import, and the cumulative times of the top-level entries after
the marker are summed (attribute access such as ``simplews.connect`` is part
of the statement, so lazily imported modules count too).  That counts exactly
the modules the library pulls in beyond what the interpreter already loaded
at start-up, without the noise of process start-up.  The same run prints the
number of OS threads of the process after the import (``/proc/self/task``),
which must be 1, and the CPU time the import statement took
(``time.process_time()``), which a busy machine inflates far less than wall
time.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Dict, Optional, Tuple

MARK = "@@benchmarks-import@@"
SCRIPT = (
    "{pin}"
    f"import sys, time; sys.stderr.write({MARK!r} + '\\n'); t = time.process_time(); "
    "{imports}; t = time.process_time() - t; import os; {check}"
    "print(len(os.listdir('/proc/self/task')), t)"
)


def parse_importtime(stderr: str) -> float:
    """Sum the top-level cumulative microseconds after the marker; return ms."""
    total_us = 0
    seen_mark = False
    for line in stderr.splitlines():
        if line.strip() == MARK:
            seen_mark = True
            continue
        if not seen_mark or not line.startswith("import time:"):
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        if len(name) - len(name.lstrip(" ")) == 1:
            total_us += int(parts[1])
    if not seen_mark:
        raise RuntimeError("import marker not found")
    return total_us / 1000.0


def measure_import(imports: str, env: Dict[str, str], cwd: str, timeout: float,
                   simplews_dir: Optional[str] = None) -> Tuple[float, float, int]:
    """Return (wall ms, CPU ms, OS threads after) for ``imports`` in a fresh process.

    With ``simplews_dir`` the process fails unless simplews came from there.
    """
    pin = check = ""
    if simplews_dir is not None:  # compare mode: simplews from that directory only
        pin = f"from benchmarks.pinned import check, pin; pin({simplews_dir!r}); "
        check = f"check({simplews_dir!r}); "
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", SCRIPT.format(pin=pin, imports=imports, check=check)],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout,
    )
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr else "failed")
    threads, cpu = proc.stdout.split()
    return parse_importtime(proc.stderr), float(cpu) * 1000.0, int(threads)
