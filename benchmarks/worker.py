"""Worker process: runs one side (client or server) of one measurement.

Started by the orchestrator as ``python -m benchmarks.worker CONFIG_JSON``.
It talks JSON lines on its (private) stdout and reads commands on stdin:

server side                          client side
-----------                          -----------
-> {"type": "ready", "port", "pid"}  -> {"type": "phase", "name", "cpu"}
<- "cpu"                                   (before and after the timed part, and
-> {"type": "cpu", "seconds"}              for "idle"; the orchestrator answers
<- "stop" (or EOF)                         "continue")
-> {"type": "stopped"}                  -> {"type": "result", "count", "seconds", ...}

Any failure is reported as ``{"type": "error", "message"}``.  With a
``profile`` path in the config, every thread is profiled and the merged
statistics are written before the final message.  The process
always ends with ``os._exit`` (library threads must not keep it alive), and a
``SIGALRM`` set from the configured timeout bounds its lifetime; a server
also exits as soon as its stdin closes, so it cannot outlive the orchestrator.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, TextIO, Tuple


def _private_stdout() -> TextIO:
    """Keep the real stdout for the protocol; send fd 1 (library prints) to stderr."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    return out


class Channel:
    """The JSON-lines channel to the orchestrator."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, kind: str, **fields: Any) -> None:
        """Send one message."""
        self.out.write(json.dumps({"type": kind, **fields}) + "\n")
        self.out.flush()

    def wait(self) -> str:
        """Block until the orchestrator sends a line; '' at EOF."""
        return sys.stdin.readline().strip()

    def sync(self, name: str) -> None:
        """Report a phase (with this process's CPU time, all threads) and wait
        for "continue" (exit if the orchestrator is gone)."""
        self.emit("phase", name=name, cpu=time.process_time())
        if self.wait() != "continue":
            os._exit(3)


Final = Tuple[str, Dict[str, Any]]


def peer_timeout(config: Dict[str, Any]) -> float:
    """Socket timeout of the fixed peer: well inside the measurement's timeout,
    so a stuck library shows up as a clear error from the peer."""
    return min(30.0, config["timeout"] / 2)


def run_server(config: Dict[str, Any], channel: Channel) -> Final:
    """Start a server (library or fixed peer), report its port, wait for stop."""
    params = config["params"]
    tls = _tls_files(config)
    stop: Callable[[], object]
    if config["impl"] == "fixed" and params["kind"] == "idle-cpu":
        from benchmarks.peer import IdleServer
        server: Any = IdleServer(config["codec"], params, peer_timeout(config))
        server.start()
        port, stop = server.port, server.stop
    elif config["impl"] == "fixed":
        from benchmarks.peer import FixedServer
        server = FixedServer(config["codec"], params, peer_timeout(config), tls)
        server.start()
        port, stop = server.port, server.stop
    else:
        from benchmarks.adapters import ADAPTERS
        from benchmarks.apps import make_handler
        start = ADAPTERS[config["impl"]].server
        if start is None:
            raise ValueError(f"{config['impl']} has no server")
        handle = start(lambda bcast: make_handler(params, bcast), tls, params["deflate"])
        port, stop = handle.port, handle.stop
    channel.emit("ready", port=port, pid=os.getpid())
    while channel.wait() == "cpu":
        channel.emit("cpu", seconds=time.process_time())
    threads = threading.active_count()
    _close_quietly(stop)
    return "stopped", {"threads": threads}


def run_client(config: Dict[str, Any], channel: Channel) -> Final:
    """Run the client side of the workload and report the result."""
    params, port = config["params"], config["port"]
    tls = _tls_files(config)
    if config["impl"] == "fixed":
        from benchmarks.peer import FixedClient
        client = FixedClient(config["codec"], port, params, peer_timeout(config), tls)
        result = getattr(client, "run_" + params["kind"].replace("-", "_"))(channel.sync)
    else:
        from benchmarks.adapters import ADAPTERS, Endpoint
        from benchmarks.apps import own_rss_kib, run_idle
        from benchmarks.apps import run_client as run_loop
        url = f"{'wss' if tls else 'ws'}://127.0.0.1:{port}/"
        connect = ADAPTERS[config["impl"]].client
        if connect is None:
            raise ValueError(f"{config['impl']} has no client")
        endpoint = Endpoint(url, "127.0.0.1", port, tls, params["keepalive"], params["deflate"])
        if params["kind"] == "idle-cpu":  # the connections die with the process
            return "result", run_idle(lambda: connect(endpoint), params, channel.sync)
        conn = connect(endpoint)
        result = dict(run_loop(conn, params, channel.sync), rss_kib=own_rss_kib())
        _close_quietly(conn.close)
    return "result", result


def _import_simplews_from(directory: str) -> None:
    """Import simplews from ``directory`` only (compare mode); fail if anything came from elsewhere."""
    from benchmarks.pinned import check, pin
    pin(directory)
    import simplews  # noqa: F401
    check(directory)


def _raise_fd_limit() -> None:
    """Raise the soft limit on open files to the hard one (many-connection workloads)."""
    import resource
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass  # the workload then reports the connection that failed


def _tls_files(config: Dict[str, Any]) -> Any:
    """The run's TLS files for a ``*-tls`` workload, else None."""
    from benchmarks.tls import TlsFiles
    return TlsFiles.from_json(config.get("tls")) if config["params"].get("tls") else None


def _close_quietly(close: Callable[[], object]) -> None:
    """Close a connection or stop a server: bounded to 2 seconds, errors ignored."""
    thread = threading.Thread(target=lambda: _ignore_errors(close), daemon=True)
    thread.start()
    thread.join(2.0)


def _ignore_errors(func: Callable[[], object]) -> None:
    try:
        func()
    except Exception:  # noqa: BLE001
        pass


class ThreadProfiler:
    """cProfile for every thread (callbacks run on library threads)."""

    def __init__(self) -> None:
        import cProfile
        self._make = cProfile.Profile
        self.profiles: List[Any] = []
        threading.setprofile(self._start_in_thread)
        main = self._make()
        self.profiles.append(main)
        main.enable()

    def _start_in_thread(self, *_args: Any) -> None:
        profile = self._make()
        self.profiles.append(profile)
        profile.enable()

    def dump(self, path: str) -> None:
        """Merge every thread's profile into one pstats file."""
        import pstats
        threading.setprofile(None)
        for profile in reversed(self.profiles):
            profile.create_stats()
        stats = pstats.Stats(self.profiles[0])
        for profile in self.profiles[1:]:
            stats.add(profile)
        stats.dump_stats(path)


def main(argv: List[str]) -> None:
    """Worker entry point; never returns."""
    channel = Channel(_private_stdout())
    code = 0
    profiler = None
    try:
        config = json.loads(argv[1])
        if hasattr(signal, "alarm"):
            signal.alarm(int(config["timeout"]) + 10)
        if config.get("simplews_dir"):
            _import_simplews_from(config["simplews_dir"])
        if config["params"]["conns"] > 1:
            _raise_fd_limit()
        if config.get("cpu") is not None:
            os.sched_setaffinity(0, {config["cpu"]})
        if config.get("profile"):
            profiler = ThreadProfiler()
        run = run_server if config["side"] == "server" else run_client
        kind, fields = run(config, channel)
    except BaseException as exc:  # noqa: BLE001 - reported to the orchestrator
        code = 1
        traceback.print_exc()
        kind, fields = "error", {"message": f"{type(exc).__name__}: {exc}"}
    try:
        if code == 0 and config.get("simplews_dir"):  # modules imported lazily during the run too
            from benchmarks.pinned import check
            check(config["simplews_dir"])
        if profiler is not None:
            profiler.dump(config["profile"])
        channel.emit(kind, **fields)
    finally:
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    main(sys.argv)
