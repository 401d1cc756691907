"""Run the scripts in examples/ as they are, in a subprocess, and read what they print."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator, List, Optional

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def example_env() -> dict:
    """The environment for an example: this checkout first on the path, no proxy settings."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ExampleProcess:
    """A running example; its stdout is read line by line on a helper thread."""

    def __init__(self, script: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script), *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=example_env(),
        )
        self.lines: queue.Queue[Optional[str]] = queue.Queue()
        self.output: List[str] = []
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for_line(self, pattern: str, timeout: float = 30) -> re.Match:
        """The first match of ``pattern`` in the next lines; fails after ``timeout``."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; output {self.output!r}") from None
            if line is None:
                raise AssertionError(f"example ended without {pattern!r}: {self.output!r} {self.stderr()!r}")
            match = re.search(pattern, line)
            if match:
                return match

    def stderr(self) -> str:
        """What the example wrote on stderr (once it has ended)."""
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return self.proc.stderr.read()

    def stop(self) -> int:
        """Interrupt the example like Ctrl-C and return its exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(30)
        finally:
            self._reader.join(30)

    def close(self) -> None:
        """Stop the example and close its pipes."""
        self.stop()
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()


def started(script: str, *args: str) -> Iterator[ExampleProcess]:
    """Generator body for fixtures: yield a running example, close it afterwards."""
    example = ExampleProcess(script, *args)
    try:
        yield example
    finally:
        example.close()
