"""Orchestrator: ``python -m benchmarks [options]`` from the project root.

For every workload and role it runs N rounds; inside a round every library
(raw TCP baseline first in round 1, then rotated) is measured once, so slow
drifts of the machine hit all libraries alike.  Each measurement starts a
fresh server process and a fresh client process (see
:mod:`benchmarks.worker`), talks to them with JSON lines, and kills both
when done, on error, on timeout, and at exit.  The table of medians and
ratios to the raw TCP baseline of the same run goes to stdout.
"""

from __future__ import annotations

import argparse
import atexit
import dataclasses
import datetime
import json
import os
import platform
import select
import signal
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Sequence, Set, Tuple

from benchmarks.adapters import ADAPTERS, BASELINE, Adapter
from benchmarks.importtime import measure_import
from benchmarks.report import Row, compute_ratios, markdown_table, text_table
from benchmarks.tls import make_files
from benchmarks.workloads import CLIENT, GROUPS, MIB, SERVER, WORKLOADS, WORKLOADS_BY_NAME, Workload

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
START_TIMEOUT = 30.0
DEFAULT_ROUNDS = 5
DEFLATE_NA = "no permessage-deflate"  # said in the table (the other n/a reasons are left out)
RSS_SETTLE = 0.3
STOP_TIMEOUT_PROFILED = 60.0

_LIVE: Set[subprocess.Popen] = set()


class MeasureError(Exception):
    """A measurement failed; the message says why (with worker stderr)."""


# --------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------

def worker_env(extra: Sequence[Tuple[str, str]] = ()) -> Dict[str, str]:
    """Environment for children: the project root first on sys.path, plus ``extra``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(extra)
    return env


class Worker:
    """One worker process with a JSON-lines stdout and a stdin for commands."""

    def __init__(self, config: dict) -> None:
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr,
            cwd=ROOT, env=worker_env(config.get("env", ())),
        )
        _LIVE.add(self.proc)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.stdin, self.stdout = self.proc.stdin, self.proc.stdout
        self._buffer = b""

    def read(self, timeout: float) -> dict:
        """The next JSON message; MeasureError on timeout, exit or bad output."""
        deadline = time.monotonic() + timeout
        fd = self.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise MeasureError("timeout" + self.stderr_tail())
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise MeasureError("worker exited" + self.stderr_tail())
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        message = json.loads(line)
        if message.get("type") == "error":
            raise MeasureError(message["message"] + self.stderr_tail())
        return message

    def send(self, line: str) -> None:
        """Send one command line (ignored if the worker is gone)."""
        try:
            self.stdin.write(line.encode() + b"\n")
            self.stdin.flush()
        except OSError:
            pass

    def stderr_tail(self, size: int = 600) -> str:
        """The end of the worker's stderr, for error messages."""
        self.stderr.seek(0)
        text = self.stderr.read().decode(errors="replace").strip()
        return (" | stderr: ..." + text[-size:]) if text else ""

    def close(self) -> None:
        """Kill the process if it still runs; release everything."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        _LIVE.discard(self.proc)
        for stream in (self.stdin, self.stdout, self.stderr):
            try:
                stream.close()
            except OSError:
                pass

    def __enter__(self) -> Worker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kill_all() -> None:
    """Kill every worker still alive (atexit / signal handler)."""
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        _LIVE.discard(proc)


def _on_signal(signum: int, _frame: object) -> None:
    kill_all()
    raise SystemExit(128 + signum)


# --------------------------------------------------------------------------
# One measurement
# --------------------------------------------------------------------------

def read_rss_kib(pid: int) -> int:
    """VmRSS of a process, in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise MeasureError(f"no VmRSS for pid {pid}")


PhaseHandler = Callable[[dict, Worker], None]


def run_pair(server_cfg: dict, client_cfg: dict, timeout: float,
             on_phase: Optional[PhaseHandler] = None) -> dict:
    """Start a server worker, then a client worker against it; return the result.

    ``on_phase(message, server)`` runs for every phase the client reports,
    while the client waits.
    """
    with Worker(server_cfg) as server:
        ready = server.read(START_TIMEOUT)
        client_cfg = dict(client_cfg, port=ready["port"])
        try:
            with Worker(client_cfg) as client:
                deadline = time.monotonic() + timeout
                while True:
                    message = client.read(max(0.1, deadline - time.monotonic()))
                    if message["type"] == "phase":
                        if on_phase:
                            on_phase(message, server)
                        client.send("continue")
                    elif message["type"] == "result":
                        return message
        except MeasureError as exc:
            raise MeasureError(str(exc) + server.stderr_tail(300)) from None
        finally:
            _stop_server(server, STOP_TIMEOUT_PROFILED if server_cfg.get("profile") else 5.0)


def _stop_server(server: Worker, timeout: float) -> None:
    """Ask a server worker to stop and wait briefly for its last message."""
    server.send("stop")
    try:
        server.read(timeout)
    except (MeasureError, ValueError):
        pass


@dataclasses.dataclass
class Sample:
    """One measurement: the workload's metric, the library side's CPU
    microseconds per operation, and the workload's second figure
    (``Workload.extra``); None where they do not apply."""

    value: float
    cpu_us: Optional[float] = None
    extra: Optional[float] = None


def adapter_of(lib: str) -> Adapter:
    """The adapter behind a library label (``simplews@REV`` in compare mode is simplews)."""
    return ADAPTERS[lib.partition("@")[0]]


def measure(workload: Workload, role: str, lib: str, opts: argparse.Namespace,
            notes: List[str]) -> Sample:
    """Run one measurement of ``lib`` and return the workload's metric."""
    params = workload.params(opts.quick, opts.conns, opts.idle_window, opts.full)
    if workload.kind == "import":
        return _measure_import(lib, opts, notes)
    if workload.kind == "oneshot":
        return _measure_oneshot(lib, params, opts, notes)
    codec = "raw" if lib == BASELINE else "ws"
    common = {"params": params, "codec": codec, "timeout": opts.timeout,
              "tls": opts.tls.to_json() if workload.tls else None}
    fixed_side, lib_side = (SERVER, CLIENT) if role == CLIENT else (CLIENT, SERVER)
    configs = {
        fixed_side: dict(common, side=fixed_side, impl="fixed"),
        lib_side: dict(common, side=lib_side, impl=adapter_of(lib).name,
                       simplews_dir=opts.sides.get(lib), env=adapter_of(lib).env),
    }
    if opts.cpus:
        configs[SERVER]["cpu"], configs[CLIENT]["cpu"] = opts.cpus
    if opts.profile:
        os.makedirs(opts.profile, exist_ok=True)
        configs[lib_side]["profile"] = os.path.join(
            os.path.abspath(opts.profile), f"{workload.name}-{role}-{lib}.prof")
    seen: Dict[str, float] = {}

    def on_phase(message: dict, server: Worker) -> None:
        name = message["name"]
        if name in ("warm", "loaded"):
            if name == "loaded":
                time.sleep(RSS_SETTLE)
            seen[name] = read_rss_kib(server.proc.pid)
        elif lib_side == CLIENT:
            seen[name] = message["cpu"]
        else:
            server.send("cpu")
            seen[name] = server.read(START_TIMEOUT)["seconds"]
            if name == "end":
                seen["rss"] = read_rss_kib(server.proc.pid)

    result = run_pair(configs[SERVER], configs[CLIENT], opts.timeout, on_phase)
    return _sample(workload, params, result, seen, notes)


def _sample(workload: Workload, params: dict, result: dict, seen: Dict[str, float],
            notes: List[str]) -> Sample:
    """The sample of one measurement from the client's result and what the phases recorded."""
    if workload.kind == "latency":
        note = f"load {result['load_bytes_per_s'] / MIB:.0f} MiB/s over {params['conns']} conns"
        if not any(n.startswith("load ") for n in notes):
            notes.append(note)
        return Sample(result["p50_us"], None, result["p99_us"])
    if workload.kind == "paced":
        cpu = seen["end"] - seen["start"]
        rss = seen.get("rss", result.get("rss_kib", 0))
        return Sample(100.0 * cpu / result["seconds"], cpu * 1e6 / result["count"], rss / 1024.0)
    if workload.kind == "idle-cpu":
        note = f"{params['conns']} conns, {params['window']:g} s window"
        if note not in notes:
            notes.append(note)
        return Sample(100.0 * (seen["end"] - seen["start"]) / result["seconds"])
    if workload.kind == "idle":
        return Sample((seen["loaded"] - seen["warm"]) / params["conns"], None, result["seconds"])
    cpu_us = (seen["end"] - seen["start"]) * 1e6 / result["count"]
    if workload.kind == "upload":
        return Sample(result["bytes"] / result["seconds"] / MIB, cpu_us)
    return Sample(result["count"] / result["seconds"], cpu_us)


def _measure_import(lib: str, opts: argparse.Namespace, notes: List[str]) -> Sample:
    directory = opts.sides.get(lib)
    adapter = adapter_of(lib)
    wall_ms, cpu_ms, threads = measure_import(adapter.imports, worker_env(adapter.env), ROOT,
                                              opts.timeout, directory)
    note = f"threads after import: {threads}"
    if note not in notes:
        notes.append(note)
    return Sample(wall_ms, cpu_ms * 1000.0)


def _measure_oneshot(lib: str, params: dict, opts: argparse.Namespace, notes: List[str]) -> Sample:
    """Time ``lib``'s one-shot script against a fixed echo server (see benchmarks.oneshot)."""
    from benchmarks import oneshot
    if opts.oneshot_python is None:
        log("  oneshot: building the wheel and its venv")
        opts.oneshot_python = oneshot.build_venv(ROOT, opts.scratch, opts.timeout)
    config = {"params": dict(params, kind="echo", size=oneshot.SIZE), "side": SERVER, "impl": "fixed",
              "codec": "raw" if lib == BASELINE else "ws", "timeout": opts.timeout, "tls": None}
    with Worker(config) as server:
        script = oneshot.SCRIPTS[lib].format(port=server.read(START_TIMEOUT)["port"])
        try:
            python = oneshot.interpreter_for(lib, opts.oneshot_python)
            wall, cpu = oneshot.run_many(python, script, oneshot.script_env(), opts.scratch,
                                         params["count"], opts.timeout)
            if lib == "simplews":  # the same script with the working tree's simplews
                editable, _ = oneshot.run_many(sys.executable, script, worker_env(), ROOT,
                                               params["count"], opts.timeout)
                notes.append(f"editable install: {editable:.1f} ms")
        finally:
            _stop_server(server, 5.0)
    return Sample(wall, cpu * 1000.0)


# --------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------

def probe_adapters(names: Sequence[str]) -> Tuple[List[str], Dict[str, str]]:
    """Which libraries import cleanly (checked in a child process)."""
    available, skipped = [], {}
    for name in names:
        proc = subprocess.run([sys.executable, "-c", ADAPTERS[name].probe],
                              capture_output=True, text=True, env=worker_env(ADAPTERS[name].env),
                              cwd=ROOT, timeout=60)
        if proc.returncode == 0:
            available.append(name)
        else:
            lines = proc.stderr.strip().splitlines()
            skipped[name] = lines[-1] if lines else "import failed"
    return available, skipped


def supports(adapter: Adapter, workload: Workload, role: str) -> Optional[str]:
    """None if ``adapter`` can run this cell, else the reason it cannot."""
    if workload.kind == "import":
        return None
    if workload.kind == "oneshot":
        from benchmarks.oneshot import SCRIPTS
        return None if adapter.name in SCRIPTS else "not measured"
    if role == CLIENT and adapter.client is None:
        return "no client"
    if role == SERVER and adapter.server is None:
        return "no server"
    if role == SERVER and workload.binary and not adapter.server_binary:
        return "no binary frames"
    if workload.kind == "idle-cpu" and adapter.idle_cpu_note:
        return adapter.idle_cpu_note
    if workload.keepalive and not adapter.keepalive:
        return "no keepalive by default: the same as idle-cpu-off"
    if workload.deflate and role not in adapter.deflate:
        return DEFLATE_NA
    return None


def speedups_built() -> bool:
    """Whether simplews imports with its C accelerator here (checked in a child process)."""
    proc = subprocess.run([sys.executable, "-c", "import simplews.frames, sys; sys.exit(not simplews.frames.SPEEDUPS)"],
                          capture_output=True, env=worker_env(), cwd=ROOT, timeout=60)
    return proc.returncode == 0


def library_version(adapter: Adapter) -> str:
    """Installed version of a library (without importing it)."""
    if adapter.dist is None:
        return "local" if adapter.name != BASELINE else "-"
    try:
        from importlib.metadata import version
        return version(adapter.dist)
    except Exception:  # noqa: BLE001
        return "?"


# --------------------------------------------------------------------------
# Main loop
# --------------------------------------------------------------------------

def run_cell_rounds(workload: Workload, role: str, libs: List[str],
                    opts: argparse.Namespace, rows: Dict[str, Row]) -> None:
    """All rounds of one (workload, role): libraries interleaved, rotated.

    Measurements warm up inside their own processes; only ``import`` needs
    an untimed first run per library (it may compile bytecode).
    """
    if workload.kind == "import":
        for lib in libs:
            try:
                measure(workload, role, lib, opts, [])
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError):
                pass
    rounds = opts.rounds or workload.rounds or DEFAULT_ROUNDS
    for rnd in range(rounds):
        shift = rnd % len(libs)
        for lib in libs[shift:] + libs[:shift]:
            row = rows[lib]
            try:
                sample = measure(workload, role, lib, opts, row.notes)
                row.samples.append(sample.value)
                row.by_round[rnd] = sample.cpu_us if sample.cpu_us is not None else sample.value
                shown = f"{sample.value:.1f} {workload.unit}"
                if sample.cpu_us is not None:
                    row.cpu_samples.append(sample.cpu_us)
                    shown += f"  (CPU {sample.cpu_us:.2f} us/op)"
                if sample.extra is not None:
                    row.extra_samples.append(sample.extra)
                    shown += f"  ({workload.extra[0]} {sample.extra:.2f} {workload.extra[1]})"
            except (MeasureError, RuntimeError, OSError, subprocess.SubprocessError,
                    ValueError, KeyError) as exc:
                row.errors.append(str(exc))
                shown = "ERROR " + str(exc)[:300]
            log(f"  {workload.name:<10} {role:<6} r{rnd + 1}  {lib:<17} {shown}")


def run_all(opts: argparse.Namespace, libs: List[str]) -> List[Row]:
    """Every selected workload and role; return the table rows in order."""
    all_rows: List[Row] = []
    for workload in WORKLOADS:
        if opts.only and workload.name not in opts.only:
            continue
        if workload.kind == "oneshot" and opts.sides:  # compare mode: only one simplews is a wheel
            continue
        for role in workload.roles:
            cell_libs, rows = [], {}
            for lib in libs:
                if not opts.libs and adapter_of(lib).rows and workload.name not in adapter_of(lib).rows:
                    continue  # a label measured only where it is cheap, unless --libs names it
                reason = supports(adapter_of(lib), workload, role)
                row = Row(workload, role, lib)
                if reason:
                    row.notes.append("n/a: " + reason)
                    said = (workload.kind == "idle-cpu" and reason not in ("no client", "no server")) \
                        or reason == DEFLATE_NA
                    shown = said or adapter_of(lib).name in opts.show_na
                    if lib != BASELINE and shown:
                        all_rows.append(row)
                    continue
                rows[lib] = row
                cell_libs.append(lib)
                all_rows.append(row)
            run_cell_rounds(workload, role, cell_libs, opts, rows)
    compute_ratios(all_rows, BASELINE)
    return all_rows


def log(text: str) -> None:
    """Progress output (stderr, so stdout carries only the table)."""
    print(text, file=sys.stderr, flush=True)


def header_lines(opts: argparse.Namespace, libs: List[str], skipped: Dict[str, str]) -> List[str]:
    """Context printed above the table."""
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    python = f"{platform.python_version()} ({platform.python_implementation()})"
    conns = "/".join(str(opts.conns or WORKLOADS_BY_NAME[name].params(opts.quick, full=opts.full)["conns"])
                     for name in ("idle", "idle-cpu-off"))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    lines = [
        f"simplews benchmarks, {now}",
        f"python {python}, {platform.platform()}, {os.cpu_count() or 0} CPUs, load average {load:.2f}",
        f"mode: {'quick' if opts.quick else ('full' if opts.full else 'default')}, "
        f"rounds: {opts.rounds or 'per workload'}, conns (idle/idle-cpu): {conns}, "
        f"CPUs (server, client): {opts.cpus or 'not pinned'}",
    ]
    if libs:
        lines.append("libraries: " + ", ".join(f"{n} {library_version(ADAPTERS[n])}" for n in libs))
    lines += [f"skipped {name}: {reason}" for name, reason in skipped.items()]
    if "simplews" in libs and "simplews-nospeedups" in libs and not speedups_built():
        lines.append("WARNING: simplews's C accelerator is not built here: simplews and "
                     "simplews-nospeedups run the same pure-Python code")
    if load > 0.5:
        lines.append(f"WARNING: the machine is busy (load {load:.2f}): expect noisy wall-clock numbers; "
                     "the CPU columns are more robust")
    return lines


def pick_cpus(mode: str) -> Optional[Tuple[int, int]]:
    """CPUs for (server, client) under ``--pin mode``, or None for no pinning.

    Not pinning is the default: on the 2-vCPU VM this suite was written on,
    "split" made ping-pong 3x slower and far noisier (every message wakes a
    halted vCPU), while the scheduler's own placement was stable.  "same"
    measures the total CPU cost of both ends on one core.
    """
    if mode == "none" or not hasattr(os, "sched_getaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if mode == "same" or len(cpus) < 2:
        return (cpus[0], cpus[0])
    return (cpus[0], cpus[1])


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="WebSocket benchmarks: each library vs a raw TCP baseline.")
    parser.add_argument("--quick", action="store_true",
                        help="small counts, 1 round (CI smoke test, < 2 minutes)")
    parser.add_argument("--full", action="store_true",
                        help="scale: the pi rows for 60 s, idle and broadcast with 10,000 connections")
    parser.add_argument("--only", type=lambda s: s.split(","), default=None,
                        metavar="WORKLOAD[,...]",
                        help="workloads to run: " + ", ".join(WORKLOADS_BY_NAME)
                        + "; or a group: " + ", ".join(sorted(GROUPS)))
    parser.add_argument("--libs", type=lambda s: s.split(","), default=None,
                        metavar="LIB[,...]",
                        help="libraries (raw-tcp is always added): "
                        + ", ".join(n for n in ADAPTERS if n != BASELINE))
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds per library (default 5, or the workload's own: 1 for the pi rows, "
                        "3 for deflate-json, idle-deflate and latency; quick 1)")
    parser.add_argument("--conns", type=int, default=None,
                        help="connections for idle, idle-cpu and broadcast (default 1000; quick 200, idle-cpu 50)")
    parser.add_argument("--idle-window", type=float, default=None, metavar="S",
                        help="seconds the idle-cpu workloads measure (default 10 for idle-cpu-off, "
                        "20 = one default ping interval for idle-cpu-ka; quick 1)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="seconds per measurement (default 300, quick 60)")
    parser.add_argument("--pin", choices=("none", "split", "same"), default="none",
                        help="CPU pinning of (server, client) processes: none (default), "
                        "split = two different CPUs, same = both on one CPU")
    parser.add_argument("--compare", metavar="REV",
                        help="measure the working tree's simplews against REV's (a temporary git "
                        "worktree), interleaved; only simplews rows, no baseline")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown")
    parser.add_argument("--json", metavar="FILE", help="also write all samples as JSON")
    parser.add_argument("--plot", metavar="FILE.png",
                        help="also draw one bar chart per workload (ratios to raw) into a PNG (matplotlib)")
    parser.add_argument("--profile", metavar="DIR",
                        help="cProfile (all threads) the library side into DIR/*.prof")
    parser.add_argument("--show-na", type=lambda s: s.split(","), default=[],
                        help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.rounds is None and opts.quick:
        opts.rounds = 1
    if opts.quick and opts.full:
        parser.error("--quick and --full exclude each other")
    if opts.timeout is None:
        opts.timeout = 60.0 if opts.quick else 300.0
    unknown = [w for w in (opts.only or []) if w not in WORKLOADS_BY_NAME and w not in GROUPS]
    unknown += [n for n in (opts.libs or []) if n not in ADAPTERS]
    if unknown:
        parser.error("unknown workload or library: " + ", ".join(unknown))
    if opts.only:
        opts.only = {n for w in opts.only for n in GROUPS.get(w, (w,))}
    opts.cpus = pick_cpus(opts.pin)
    opts.tls = None
    opts.scratch = opts.oneshot_python = None  # the run's temporary directory; the oneshot venv's python
    opts.sides = {}  # library label -> directory its simplews is imported from (compare mode)
    if (opts.rounds is not None and opts.rounds < 1) or (opts.conns is not None and opts.conns < 1):
        parser.error("--rounds and --conns must be positive")
    if opts.idle_window is not None and opts.idle_window <= 0:
        parser.error("--idle-window must be positive")
    if opts.compare and opts.libs:
        parser.error("--compare measures simplews only: no --libs")
    return opts


def write_outputs(opts: argparse.Namespace, head: List[str], rows: List[Row]) -> None:
    """Print the table; write Markdown / JSON files if asked."""
    print("\n".join(head))
    print()
    print(text_table(rows))
    if opts.markdown:
        with open(opts.markdown, "w") as out:
            out.write("# Benchmark results\n\n")
            out.write("".join(f"- {line}\n" for line in head))
            out.write("\n" + markdown_table(rows) + "\n\n")
            out.write("`vs raw`: median / raw TCP median in the same run "
                      "(throughput: higher is better; idle KiB/conn: lower is better).\n")
    if opts.json:
        write_json(opts.json, rows)
    if opts.plot:
        from benchmarks.plot import write_plot
        write_plot(rows, opts.plot)


def write_json(path: str, rows: List[Row]) -> None:
    """Every sample of every row, as JSON."""
    with open(path, "w") as out:
        json.dump([{"workload": r.workload.name, "role": r.role, "lib": r.lib,
                    "unit": r.workload.unit, "samples": r.samples, "median": r.median,
                    "cpu_samples": r.cpu_samples, "cpu_median": r.cpu_median,
                    "extra": r.workload.extra[0], "extra_samples": r.extra_samples,
                    "ratio": r.ratio, "errors": r.errors, "notes": r.notes}
                   for r in rows], out, indent=1)


def prepare_tls(opts: argparse.Namespace, scratch: str) -> None:
    """Make the run's certificates in ``scratch`` if a selected workload uses TLS."""
    if any(w.tls for w in WORKLOADS if not opts.only or w.name in opts.only):
        opts.tls = make_files(scratch)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the benchmarks; exit status 1 if any measurement failed."""
    opts = parse_args(argv)
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    if opts.compare:
        from benchmarks.compare import run_compare
        return run_compare(opts)
    wanted = [BASELINE] + [n for n in (opts.libs or ADAPTERS) if n != BASELINE]
    libs, skipped = probe_adapters(wanted)
    if BASELINE not in libs:
        log("raw TCP baseline unavailable: " + skipped.get(BASELINE, "?"))
        return 2
    head = header_lines(opts, libs, skipped)
    log("\n".join(head))
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="simplews-bench-") as scratch:
        prepare_tls(opts, scratch)
        opts.scratch = scratch  # removed with everything in it (the oneshot venv) at the end
        try:
            rows = run_all(opts, libs)
        finally:
            kill_all()
    log("done in %.0f s" % (time.monotonic() - started))
    write_outputs(opts, head, rows)
    return 1 if any(r.errors for r in rows) else 0
