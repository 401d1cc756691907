"""A real HAProxy process in front of a test server (importable as ``haproxy``)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path
from typing import Optional

from helpers import accepts, stop_process, wait_for

GLOBAL = """\
global
    maxconn 64
defaults
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 30s
"""


class HAProxy:
    """An ``haproxy -db`` process running a generated configuration on a free port of 127.0.0.1."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.log = workdir / "haproxy.out"

    def start(self, sections: str) -> None:
        """Run ``sections`` (``{port}`` is the frontend's port) and wait until it accepts."""
        for _ in range(5):  # the probed port may be taken before haproxy binds it
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            conf = self.workdir / "haproxy.cfg"
            conf.write_text(GLOBAL + sections.format(port=self.port, dir=self.workdir))
            with open(self.log, "wb") as out:
                self.proc = subprocess.Popen([self.binary, "-db", "-f", str(conf)], stdout=out, stderr=subprocess.STDOUT)
            if wait_for(lambda: self.proc is not None and (self.proc.poll() is not None or accepts(self.port)), timeout=10):
                if self.proc.poll() is None:
                    return
        raise RuntimeError(f"haproxy did not start: {self.log.read_text(errors='replace')}")

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        stop_process(self.proc)


def haproxy_binary() -> Optional[str]:
    """The haproxy executable, if installed (``.ci/run`` installs it)."""
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy", "/usr/bin/haproxy") if Path(p).exists()), None)
