"""Broadcast across server processes through Redis: ``python -m benchmarks.cluster``.

Rows: one simplews server process broadcasting locally (no Redis: the
single-process figure), then 1, 2 and 4 server processes joined by a
:class:`simplews.RedisBroadcast` on one redis-server of our own (free port,
no persistence). The clients (1,000 by default, ``--clients``) are raw
WebSocket connections spread evenly over the processes, all in this process,
read through one epoll loop.

Each row has two phases:

* **burst**: every process is asked, at once, to originate its share of
  ``--messages`` 100-byte text messages (total the same in every row); each
  process broadcasts its messages to its own clients and publishes them; the
  others deliver them to theirs. *deliveries/s* = messages x clients / time
  from the request to the last byte at the last client; *CPU/delivery* = the
  CPU time of the server processes and of redis-server over that phase
  (``/proc``), divided by the deliveries; *p50/p99 under load* are the
  latencies of those deliveries (each message carries its origin's
  ``CLOCK_MONOTONIC``, shared by all processes of one machine).
* **paced**: ``--paced`` messages one at a time, each from the next
  process, the next only once every client had the last: *p50/p99* here
  are the path's latency without queueing.

Latencies are read on every 10th connection (the rest only count bytes, so
that this one client process is not the bottleneck; *client CPU* says how
busy it was during the burst, in % of one core). All processes share
this machine's cores: with 4 servers, Redis and the clients on 2 cores the
extra processes add CPU contention, not capacity; the row shows the cost of
the fan-out through Redis, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

from benchmarks.codec import WsCodec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 100  # payload bytes: a 2-byte header, so every frame is SIZE + 2 bytes
STAMP = 20  # digits of the origin's monotonic_ns at the start of every payload
SAMPLE_EVERY = 10
ROWS: Tuple[Tuple[str, int, bool], ...] = (
    ("1 process, no Redis", 1, False),
    ("1 process + Redis", 1, True),
    ("2 processes + Redis", 2, True),
    ("4 processes + Redis", 4, True),
)


# --- the server processes --------------------------------------------------------------------


def serve(argv: Sequence[str]) -> None:
    """A server process: ``burst N`` from a client makes it originate N messages."""
    import simplews

    parser = argparse.ArgumentParser()
    parser.add_argument("--redis")
    parser.add_argument("--prefix", default="bench")
    args = parser.parse_args(argv)
    _raise_fd_limit()
    broadcast = simplews.RedisBroadcast(args.redis, channel_prefix=args.prefix) if args.redis else None
    padding = "x" * (SIZE - STAMP)

    def on_message(ws: simplews.Connection, message: Any) -> None:
        if message == "join":
            ws.send("joined")
        elif isinstance(message, str) and message.startswith("burst "):
            for _ in range(int(message.split()[1])):
                line = f"{time.monotonic_ns():020d}{padding}"
                server.broadcast(line)  # to every process's clients, with Redis

    server = simplews.Server(on_message=on_message, port=0, ping_interval=None, backlog=1024, broadcast=broadcast)
    try:
        server.start()
        print(f"ready {server.port} {os.getpid()}", flush=True)
        server.serve_forever()
    finally:
        if broadcast is not None:
            stats = broadcast.stats
            print(json.dumps({"dropped": stats.dropped, "overflowed": stats.overflowed, "gaps": stats.gaps}), flush=True)


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Process:
    """A child process whose stdout we read line by line."""

    def __init__(self, command: List[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env, cwd=ROOT)

    def line(self, timeout: float) -> str:
        """The next line of output (fails after ``timeout``)."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"{self.proc.args!r} said nothing for {timeout} s")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.proc.args!r} ended with {self.proc.wait()}")
        return line.strip()

    def stop(self, timeout: float = 30) -> str:
        """SIGINT, then its remaining output."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out or ""


def start_redis(directory: str) -> Tuple[Process, int]:
    """redis-server on a free port of 127.0.0.1, no persistence."""
    executable = shutil.which("redis-server") or "/usr/bin/redis-server"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    redis = Process([executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                     "--dir", directory, "--loglevel", "warning", "--logfile", os.path.join(directory, "redis.log")])  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return redis, port
        except OSError:
            time.sleep(0.05)
    redis.stop()
    raise RuntimeError("redis-server did not start")


# --- the clients ---------------------------------------------------------------------------------


class Clients:
    """Raw client connections spread over the servers, read through one epoll loop."""

    def __init__(self, ports: List[int], count: int, timeout: float) -> None:
        self.timeout = timeout
        self.frame = SIZE + 2
        self.socks: Dict[int, socket.socket] = {}
        self.control: List[socket.socket] = []  # one connection per server takes the requests
        self.received: Dict[int, int] = {}
        self.pending: Dict[int, bytes] = {}
        self.buf = bytearray(1 << 20)
        self.poller = select.epoll(sizehint=count)
        joined = WsCodec.frame(b"joined", text=True, masked=False)
        for i in range(count):
            port = ports[i % len(ports)]
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rest = WsCodec.client_handshake(sock, port)
            sock.sendall(WsCodec.frame(b"join", text=True, masked=True))  # answered once the server counts us
            while len(rest) < len(joined):
                chunk = sock.recv(64)
                if not chunk:
                    raise ConnectionError("server closed during the join")
                rest += chunk
            if rest != joined:
                raise ConnectionError(f"unexpected answer to join: {rest!r}")
            sock.setblocking(False)
            self.socks[sock.fileno()] = sock
            self.received[sock.fileno()] = 0
            if i < len(ports):
                self.control.append(sock)
            if i % SAMPLE_EVERY == 0:
                self.pending[sock.fileno()] = b""
            self.poller.register(sock.fileno(), select.EPOLLIN)

    def ask(self, server: int, request: str) -> None:
        """Send ``request`` to server number ``server``."""
        sock = self.control[server]
        sock.setblocking(True)
        sock.sendall(WsCodec.frame(request.encode(), text=True, masked=True))
        sock.setblocking(False)

    def collect(self, messages: int) -> Tuple[List[int], int]:
        """Wait until every client has ``messages`` more; (latencies in ns of the sampled ones, time of the last byte)."""
        want = {fd: got + messages * self.frame for fd, got in self.received.items()}
        waiting = set(want)
        latencies: List[int] = []
        last = 0
        deadline = time.monotonic() + self.timeout
        view = memoryview(self.buf)
        while waiting:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(waiting)} clients still wait for messages")
            for fd, _ in self.poller.poll(1.0):
                try:
                    n = self.socks[fd].recv_into(self.buf)
                except BlockingIOError:
                    continue
                now = time.monotonic_ns()
                if not n:
                    raise ConnectionError("a server closed a client connection")
                self.received[fd] += n
                if fd in self.pending:
                    latencies.extend(self._stamps(fd, bytes(view[:n]), now))
                if self.received[fd] > want[fd]:
                    raise ConnectionError(f"unexpected bytes: {bytes(view[:n])[:40]!r}")
                if self.received[fd] == want[fd] and fd in waiting:
                    waiting.discard(fd)
                    last = now
        return latencies, last

    def _stamps(self, fd: int, data: bytes, now: int) -> List[int]:
        """Latencies of the whole frames ``data`` completes on a sampled connection."""
        data = self.pending[fd] + data
        whole = len(data) // self.frame * self.frame
        self.pending[fd] = data[whole:]
        return [now - int(data[at + 2 : at + 2 + STAMP]) for at in range(0, whole, self.frame)]

    def close(self) -> None:
        self.poller.close()
        for sock in self.socks.values():
            sock.close()


# --- one row -------------------------------------------------------------------------------------


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: List[int], fraction: float) -> float:
    """The ``fraction`` quantile of nanosecond ``values``, in milliseconds."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


def measure(label: str, servers: int, redis_port: Optional[int], args: argparse.Namespace, prefix: str) -> Dict[str, Any]:
    """Start the servers of one row, connect the clients, run both phases."""
    command = [sys.executable, "-m", "benchmarks.cluster", "serve", "--prefix", prefix]
    if redis_port is not None:
        command += ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
    procs = [Process(command) for _ in range(servers)]
    clients: Optional[Clients] = None
    try:
        ready = [proc.line(60).split() for proc in procs]
        ports, pids = [int(r[1]) for r in ready], [int(r[2]) for r in ready]
        clients = Clients(ports, args.clients, args.timeout)
        watched = pids + ([args.redis_pid] if redis_port is not None else [])
        # burst: each server originates its share at once
        shares = [args.messages // servers + (1 if i < args.messages % servers else 0) for i in range(servers)]
        cpu_before = sum(cpu_seconds(pid) for pid in watched)
        own_before = _own_cpu()
        start = time.monotonic_ns()
        for i, share in enumerate(shares):
            clients.ask(i, f"burst {share}")
        loaded, last = clients.collect(args.messages)
        seconds = (last - start) / 1e9
        cpu = sum(cpu_seconds(pid) for pid in watched) - cpu_before
        client_cpu = (_own_cpu() - own_before) / seconds
        deliveries = args.messages * args.clients
        # paced: one message at a time, from each server in turn
        paced: List[int] = []
        for j in range(args.paced):
            clients.ask(j % servers, "burst 1")
            paced.extend(clients.collect(1)[0])
            time.sleep(0.002)
    finally:
        if clients is not None:
            clients.close()
        outputs = [proc.stop() for proc in procs]
    lost = [json.loads(line) for out in outputs for line in out.splitlines() if line.startswith("{")]
    return {
        "row": label, "servers": servers, "redis": redis_port is not None, "clients": args.clients,
        "messages": args.messages, "deliveries_per_s": deliveries / seconds, "cpu_us_per_delivery": cpu / deliveries * 1e6,
        "p50_ms": percentile(paced, 0.5), "p99_ms": percentile(paced, 0.99),
        "p50_load_ms": percentile(loaded, 0.5), "p99_load_ms": percentile(loaded, 0.99),
        "dropped": sum(s["dropped"] for s in lost), "overflowed": sum(s["overflowed"] for s in lost),
        "client_cpu": client_cpu,
    }  # fmt: skip


HEADER = ("row", "deliveries/s", "CPU µs/delivery", "p50 ms", "p99 ms", "p50 ms (burst)", "p99 ms (burst)", "dropped", "client CPU")


def cells(result: Dict[str, Any]) -> Tuple[str, ...]:
    """One table row."""
    return (
        result["row"], f"{result['deliveries_per_s']:,.0f}", f"{result['cpu_us_per_delivery']:.2f}",
        f"{result['p50_ms']:.2f}", f"{result['p99_ms']:.2f}", f"{result['p50_load_ms']:.1f}", f"{result['p99_load_ms']:.1f}",
        str(result["dropped"]), f"{result['client_cpu']:.0%}",
    )  # fmt: skip


def table(results: List[Dict[str, Any]], markdown: bool = False) -> str:
    """The results as a text or Markdown table."""
    rows = [HEADER] + [cells(r) for r in results]
    if markdown:
        lines = ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join([lines[0], "|" + "---|" * len(HEADER), *lines[1:]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]

    def line(row: Tuple[str, ...]) -> str:
        return "  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))

    return "\n".join(line(row) for row in rows)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the rows; print the table (and write JSON/Markdown on request)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["serve"]:
        serve(argv[1:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=200, help="messages in the burst phase, in all (at most 1,024 per process)")
    parser.add_argument("--paced", type=int, default=50, help="messages of the paced phase")
    parser.add_argument("--servers", default="1,2,4", help="process counts of the rows with Redis")
    parser.add_argument("--quick", action="store_true", help="40 clients, 20 + 5 messages, 1 and 2 processes")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the table here")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.messages, args.paced, args.servers = 40, 20, 5, "1,2"
    counts = {int(n) for n in args.servers.split(",")}
    _raise_fd_limit()
    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="simplews-bench-redis-") as directory:
        redis, port = start_redis(directory)
        args.redis_pid = redis.proc.pid
        try:
            for n, (label, servers, with_redis) in enumerate(ROWS):
                if with_redis and servers not in counts:
                    continue
                print(f"{label}: {args.clients} clients, {args.messages} messages ...", file=sys.stderr, flush=True)
                results.append(measure(label, servers, port if with_redis else None, args, f"bench{n}"))
        finally:
            redis.stop()
    print(f"{os.cpu_count()} cores; servers, redis-server and the clients share them")
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table(results, markdown=True) + "\n")
    return 0 if all(r["dropped"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
