"""Workload "oneshot": a whole short-lived client process, as a script runs it.

One fresh interpreter does the library's import, connects to a running fixed
echo server, sends one 32-byte text message, reads the echo and closes; the
metric is the wall time of the whole process in ms (median of ``count``
runs), interpreter start-up included, and ``CPU us/op`` is the CPU time of
that child process (user + system, from ``getrusage(RUSAGE_CHILDREN)``).

simplews is measured as users get it: once per harness run a wheel of the
project is built (``pip wheel --no-deps``), a virtual environment is made in
the run's scratch directory (no system site-packages) and the wheel and its
dependency certifi are installed into it offline (``--no-index
--find-links`` a directory holding the wheel and a certifi wheel fetched with
``pip download``).  The raw baseline (``import socket`` and the raw TCP
framing against the raw fixed server) runs with the same venv interpreter,
so the ratio simplews / raw compares two scripts on one interpreter.
websockets and websocket-client are regular installs and run with the
harness's own interpreter.  Every script runs in the scratch directory with
no ``PYTHONPATH``, so the project checkout cannot shadow the wheel.  For
simplews the note also gives the figure with the harness's interpreter and
the working tree's simplews (the editable install).
"""

from __future__ import annotations

import glob
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from benchmarks.codec import RAW_TEXT_FLAG

SIZE = 32
_WS_END = "print(len(reply))\n"
SCRIPTS: Dict[str, str] = {
    "raw-tcp": (
        "import socket\n"
        "s = socket.create_connection(('127.0.0.1', {port}))\n"
        "s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\n"
        f"s.sendall(({SIZE} | {RAW_TEXT_FLAG}).to_bytes(4, 'big') + b'x' * {SIZE})\n"
        "data = b''\n"
        f"while len(data) < {4 + SIZE}:\n"
        "    chunk = s.recv(65536)\n"
        "    if not chunk:\n"
        "        break\n"
        "    data += chunk\n"
        "s.close()\n"
        "reply = data[4:]\n" + _WS_END
    ),
    "simplews": (
        "import simplews\n"
        "ws = simplews.connect('ws://127.0.0.1:{port}/')\n"
        f"ws.send('x' * {SIZE})\n"
        "reply = ws.recv()\n"
        "ws.close()\n" + _WS_END
    ),
    "websocket-client": (
        "import websocket\n"
        "ws = websocket.create_connection('ws://127.0.0.1:{port}/')\n"
        f"ws.send('x' * {SIZE})\n"
        "reply = ws.recv()\n"
        "ws.close()\n" + _WS_END
    ),
    "websockets": (
        "from websockets.sync.client import connect\n"
        "ws = connect('ws://127.0.0.1:{port}/')\n"
        f"ws.send('x' * {SIZE})\n"
        "reply = ws.recv()\n"
        "ws.close()\n" + _WS_END
    ),
}
# Which interpreter runs each script: the wheel's venv, or the harness's own.
IN_VENV = ("raw-tcp", "simplews")


def script_env() -> Dict[str, str]:
    """The environment of a one-shot script: this one without PYTHONPATH."""
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _pip(args: List[str], cwd: str, timeout: float) -> None:
    """Run pip in ``cwd``; RuntimeError with its last stderr line on failure."""
    proc = subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd, env=script_env())
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        raise RuntimeError("pip " + args[0] + " failed: " + (lines[-1] if lines else "?"))


def build_venv(root: str, scratch: str, timeout: float) -> str:
    """Build the project's wheel, make a venv with it and certifi; return its python.

    Done once per directory: a second call finds the venv and returns at once.
    The wheel is built from a copy of the tree (an in-tree build would leave
    ``build/`` and ``*.egg-info`` in the checkout); pip runs in ``scratch``,
    where no checkout is on ``sys.path``.
    """
    venv = os.path.join(scratch, "oneshot-venv")
    python = os.path.join(venv, "bin", "python")
    if os.path.exists(python):
        return python
    wheels = os.path.join(scratch, "oneshot-wheels")
    os.makedirs(wheels, exist_ok=True)
    source = os.path.join(scratch, "oneshot-source")
    shutil.copytree(root, source, ignore=shutil.ignore_patterns(
        ".git", "build", "dist", "*.egg-info", "__pycache__", "*.so", ".*_cache"))
    _pip(["wheel", "--no-deps", "-q", "-w", wheels, source], scratch, timeout)
    _pip(["download", "-q", "--only-binary", ":all:", "-d", wheels, "certifi"], scratch, timeout)
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", venv], check=True,
                   capture_output=True, timeout=timeout)
    built = glob.glob(os.path.join(wheels, "simplews-*.whl"))
    if len(built) != 1:
        raise RuntimeError(f"expected one simplews wheel, found {built}")
    _pip(["--python", python, "install", "-q", "--no-index", "--find-links", wheels, built[0]],
         scratch, timeout)
    return python


def run_once(python: str, script: str, env: Dict[str, str], cwd: str,
             timeout: float) -> Tuple[float, float]:
    """Run one one-shot script; return (wall ms, CPU ms of the child)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([python, "-c", script], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0 or proc.stdout.strip() != str(SIZE):
        lines = proc.stderr.strip().splitlines()
        raise RuntimeError("one-shot script failed: " + (lines[-1] if lines else repr(proc.stdout)))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall * 1000.0, cpu * 1000.0


def run_many(python: str, script: str, env: Dict[str, str], cwd: str, count: int,
             timeout: float) -> Tuple[float, float]:
    """One untimed run (bytecode, page cache), then ``count`` runs; return the medians."""
    run_once(python, script, env, cwd, timeout)
    runs = [run_once(python, script, env, cwd, timeout) for _ in range(count)]
    return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)


def interpreter_for(lib: str, venv_python: Optional[str]) -> str:
    """The python that runs ``lib``'s script."""
    if lib in IN_VENV:
        if venv_python is None:
            raise RuntimeError("no venv")
        return venv_python
    return sys.executable
