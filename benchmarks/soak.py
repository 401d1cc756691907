"""Soak test: ``python -m benchmarks.soak [--minutes 30] [--rate 2000]``.

A simplews server and a simplews client, each in its own process, hold one
``wss://`` connection (a throw-away CA and certificate made with trustme, as
for the TLS benchmark rows) with the library's default options, keepalive
included, and each sends ``--rate`` text messages per second to the other
(100 B to 1 KiB, every message carrying its sequence number and a payload
derived from it).  Every ``--interval`` seconds (10) a line gives the
elapsed time, the messages received each way, the RSS and the CPU % of both
processes.  At the end each side stops sending, the receivers drain, and a
summary gives RSS at start and end and CPU % of each process, the
connections closed during the run, and the messages lost (sequence gaps or
never received) and garbled (wrong payload or order).  The exit status is
1 if any connection closed or any message was lost or garbled.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIN_SIZE, MAX_SIZE = 100, 1024
DRAIN_TIMEOUT = 15.0
REPLY_TIMEOUT = 30.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------
# Messages
# --------------------------------------------------------------------------

def payload(seq: int) -> str:
    """Message ``seq``: its number (10 digits) and filler, 100 B to 1 KiB in all."""
    size = MIN_SIZE + (seq * 7919) % (MAX_SIZE - MIN_SIZE + 1)
    return f"{seq:010d}" + chr(97 + seq % 26) * (size - 10)


class Checker:
    """Receiving side: counts messages, sequence gaps (lost) and bad payloads (garbled)."""

    def __init__(self) -> None:
        self.received = 0
        self.lost = 0
        self.garbled = 0
        self._next = 0
        self._lock = threading.Lock()

    def feed(self, message: Any) -> None:
        """Check one received message."""
        with self._lock:
            self.received += 1
            head = message[:10] if isinstance(message, str) else ""
            if not head.isdigit() or message != payload(int(head)) or int(head) < self._next:
                self.garbled += 1
                return
            seq = int(head)
            self.lost += seq - self._next
            self._next = seq + 1


class Pacer:
    """Sends ``payload(0)``, ``payload(1)``, ... at ``rate`` per second until stopped."""

    def __init__(self, send: Any, rate: float) -> None:
        self.send = send
        self.rate = rate
        self.sent = 0
        self.error: Optional[str] = None
        self.stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-pacer", daemon=True)

    def start(self) -> None:
        """Start sending in a thread."""
        self._thread.start()

    def stop(self) -> int:
        """Stop sending; return how many messages were sent."""
        self.stopped.set()
        self._thread.join(REPLY_TIMEOUT)
        return self.sent

    def _run(self) -> None:
        start = time.monotonic()
        try:
            while not self.stopped.is_set():
                due = start + self.sent / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    self.stopped.wait(delay)
                    continue
                self.send(payload(self.sent))
                self.sent += 1
        except Exception as exc:  # noqa: BLE001 - reported in the status
            self.error = f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------
# The two sides (child processes)
# --------------------------------------------------------------------------

class Side:
    """What a side reports: its pacer, its checker, closes seen while running."""

    def __init__(self, out: TextIO, rate: float) -> None:
        self.out = out
        self.rate = rate
        self.checker = Checker()
        self.pacer: Optional[Pacer] = None
        self.closed = 0
        self.running = True
        self._lock = threading.Lock()

    def emit(self, kind: str, **fields: Any) -> None:
        """One JSON line to the orchestrator."""
        with self._lock:
            self.out.write(json.dumps({"type": kind, **fields}) + "\n")
            self.out.flush()

    def status(self) -> Dict[str, Any]:
        """The counts so far."""
        pacer = self.pacer
        return {"sent": pacer.sent if pacer else 0, "received": self.checker.received,
                "lost": self.checker.lost, "garbled": self.checker.garbled, "closed": self.closed,
                "error": pacer.error if pacer else None}

    def on_closed(self) -> None:
        """The connection closed: counted unless the run is over."""
        if self.running:
            self.closed += 1

    def begin(self, send: Any) -> None:
        """Start sending on a (new) connection."""
        self.pacer = Pacer(send, self.rate)
        self.pacer.start()

    def serve_commands(self, close: Any) -> None:
        """Status every second; "stop" stops sending, "exit" (or EOF) closes and ends."""
        ticker = threading.Thread(target=self._tick, name="soak-status", daemon=True)
        ticker.start()
        for line in sys.stdin:
            if line.strip() == "stop":  # the run is over: the close that follows is not counted
                self.running = False
                self.emit("stopped", sent=self.pacer.stop() if self.pacer else 0)
            elif line.strip() == "exit":
                break
        self.running = False
        if self.pacer:
            self.pacer.stop()
        close()
        self.emit("final", **self.status())

    def _tick(self) -> None:
        while True:
            self.emit("status", **self.status())
            time.sleep(1.0)


def run_server(config: Dict[str, Any], side: Side) -> None:
    """A simplews.Server with default options over TLS; sends from on_open."""
    import simplews
    from benchmarks.tls import TlsFiles, server_context
    server = simplews.Server(
        on_open=lambda ws: side.begin(ws.send),
        on_message=lambda ws, message: side.checker.feed(message),
        on_close=lambda ws, code, reason: side.on_closed(),
        host="127.0.0.1", port=0, ssl_context=server_context(TlsFiles.from_json(config["tls"])),
    )
    server.start()
    opts = simplews.ServerOptions()
    side.emit("ready", port=server.port, ping_interval=opts.ping_interval, ping_timeout=opts.ping_timeout)
    side.serve_commands(server.shutdown)


def run_client(config: Dict[str, Any], side: Side) -> None:
    """simplews.connect with default options over TLS; receives on a thread."""
    import simplews
    from benchmarks.tls import TlsFiles, client_context
    ws = simplews.connect(f"wss://127.0.0.1:{config['port']}/",
                          ssl_context=client_context(TlsFiles.from_json(config["tls"])))

    def receive() -> None:
        try:
            for message in ws:
                side.checker.feed(message)
        except simplews.ConnectionClosed:
            pass
        side.on_closed()

    threading.Thread(target=receive, name="soak-receiver", daemon=True).start()
    side.begin(ws.send)
    opts = simplews.ClientOptions()
    side.emit("ready", ping_interval=opts.ping_interval, ping_timeout=opts.ping_timeout)
    side.serve_commands(ws.close)


def child_main(role: str, config: Dict[str, Any]) -> None:
    """Entry point of a side process; never returns."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    import signal
    if hasattr(signal, "alarm"):  # a safety net: no side outlives the run by long
        signal.alarm(int(config["lifetime"]))
    side = Side(out, config["rate"])
    code = 0
    try:
        (run_server if role == "server" else run_client)(config, side)
    except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
        code = 1
        side.emit("error", message=f"{type(exc).__name__}: {exc}")
    out.flush()
    os._exit(code)


# --------------------------------------------------------------------------
# The orchestrator
# --------------------------------------------------------------------------

class Child:
    """A side process; a thread keeps its last status and queues its other messages."""

    def __init__(self, role: str, config: Dict[str, Any]) -> None:
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        self.role = role
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.soak", "--side", role, json.dumps(config)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)
        self.status: Dict[str, Any] = {}
        self.messages: queue.Queue[Dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            message = json.loads(line)
            if message["type"] == "status":
                self.status = message
            else:
                self.messages.put(message)
        self.messages.put({"type": "error", "message": "process exited"})

    def expect(self, kind: str) -> Dict[str, Any]:
        """The next non-status message, which must be ``kind``."""
        try:
            message = self.messages.get(timeout=REPLY_TIMEOUT)
        except queue.Empty:
            raise RuntimeError(f"{self.role}: no {kind!r} within {REPLY_TIMEOUT:g} s") from None
        if message["type"] != kind:
            raise RuntimeError(f"{self.role}: {message.get('message', message['type'])}")
        return message

    def command(self, line: str) -> None:
        """Send a command line."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def cpu_seconds(self) -> float:
        """utime + stime of the process, from /proc/<pid>/stat."""
        with open(f"/proc/{self.proc.pid}/stat") as stat:
            fields = stat.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def rss_mib(self) -> float:
        """VmRSS in MiB."""
        from benchmarks.run import read_rss_kib
        return read_rss_kib(self.proc.pid) / 1024.0

    def close(self) -> None:
        """End the process (asked first, killed after 10 s)."""
        try:
            if self.proc.stdin:
                self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        self._reader.join(REPLY_TIMEOUT)
        if self.proc.stdout:
            self.proc.stdout.close()


class Sample:
    """CPU seconds and RSS of both processes at one moment."""

    def __init__(self, children: Sequence[Child]) -> None:
        self.time = time.monotonic()
        self.cpu = [child.cpu_seconds() for child in children]
        self.rss = [child.rss_mib() for child in children]

    def cpu_percent(self, earlier: Sample) -> List[float]:
        """% of one core of each process since ``earlier``."""
        wall = max(1e-9, self.time - earlier.time)
        return [100.0 * (now - then) / wall for now, then in zip(self.cpu, earlier.cpu)]


def progress_line(elapsed: float, server: Child, client: Child, now: Sample, last: Sample) -> str:
    """One line of the periodic report."""
    cpu = now.cpu_percent(last)
    return (f"[{elapsed:7.0f} s] client->server {server.status.get('received', 0):,}  "
            f"server->client {client.status.get('received', 0):,}  "
            f"RSS server {now.rss[0]:.1f} MiB client {now.rss[1]:.1f} MiB  "
            f"CPU server {cpu[0]:.1f}% client {cpu[1]:.1f}%")


def drain(server: Child, client: Child, sent: Dict[str, int]) -> None:
    """Wait (bounded) until each side received what the other sent."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline:
        if (server.status.get("received", -1) >= sent["client"]
                and client.status.get("received", -1) >= sent["server"]):
            return
        time.sleep(0.2)


def summary(finals: Dict[str, Dict[str, Any]], sent: Dict[str, int], first: Sample,
            last: Sample, start: Sample) -> List[str]:
    """The summary lines; the last one says OK or FAIL and why."""
    cpu = last.cpu_percent(start)
    lines, problems = [], []
    for direction, sender, receiver in (("client->server", "client", "server"),
                                        ("server->client", "server", "client")):
        got = finals[receiver]
        lost = max(got["lost"], sent[sender] - got["received"] + got["garbled"])
        lines.append(f"messages {direction}: sent {sent[sender]:,}, received {got['received']:,}, "
                     f"lost {lost:,}, garbled {got['garbled']:,}")
        if lost or got["garbled"]:
            problems.append(f"{direction}: {lost} lost, {got['garbled']} garbled")
        if not sent[sender]:
            problems.append(f"{sender} sent nothing")
    for n, name in enumerate(("server", "client")):
        lines.append(f"{name}: RSS start {first.rss[n]:.1f} MiB, end {last.rss[n]:.1f} MiB; "
                     f"CPU {cpu[n]:.1f}% of one core")
        if finals[name].get("error"):
            problems.append(f"{name}: {finals[name]['error']}")
    closed = finals["server"]["closed"] + finals["client"]["closed"]
    lines.append(f"connections closed: {closed}")
    if closed:
        problems.append(f"{closed} connection(s) closed")
    lines.append("result: " + ("OK" if not problems else "FAIL: " + "; ".join(problems)))
    return lines


def soak(duration: float, rate: float, interval: float) -> int:
    """Run the soak; print progress and the summary; return the exit status."""
    from benchmarks.tls import make_files
    with tempfile.TemporaryDirectory(prefix="simplews-soak-") as scratch:
        config = {"tls": make_files(scratch).to_json(), "rate": rate, "lifetime": duration + 300}
        server = Child("server", config)
        children = [server]
        try:
            ready = server.expect("ready")
            client = Child("client", dict(config, port=ready["port"]))
            children.append(client)
            keep = client.expect("ready")
            print(f"soak: wss://127.0.0.1:{ready['port']}/, {rate:g} msg/s each way, "
                  f"{MIN_SIZE}-{MAX_SIZE} B text, {duration:g} s; simplews defaults; keepalive: "
                  f"server ping_interval={ready['ping_interval']} s ping_timeout={ready['ping_timeout']} s, "
                  f"client ping_interval={keep['ping_interval']} s ping_timeout={keep['ping_timeout']} s",
                  flush=True)
            return run_phases(server, client, duration, interval)
        finally:
            for child in children:
                child.close()


def run_phases(server: Child, client: Child, duration: float, interval: float) -> int:
    """The timed run, then stop, drain, and the summary."""
    start = last = Sample((server, client))
    end = start.time + duration
    while time.monotonic() < end:
        time.sleep(max(0.0, min(interval, end - time.monotonic())))
        now = Sample((server, client))
        print(progress_line(now.time - start.time, server, client, now, last), flush=True)
        last = now
    finish = Sample((server, client))
    sent = {}
    for child in (server, client):
        child.command("stop")
    for child in (server, client):
        sent[child.role] = child.expect("stopped")["sent"]
    drain(server, client, sent)
    finals = {}
    for child in (client, server):
        child.command("exit")
        finals[child.role] = child.expect("final")
    lines = summary(finals, sent, start, finish, start)
    print("summary (%.1f s):" % (finish.time - start.time))
    print("\n".join("  " + line for line in lines), flush=True)
    return 0 if lines[-1] == "result: OK" else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line: the soak, or (``--side``) one of its processes."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="duration (default 30)")
    parser.add_argument("--seconds", type=float, default=None, help="duration in seconds (overrides --minutes)")
    parser.add_argument("--rate", type=float, default=2000.0, help="messages per second each way (default 2000)")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between progress lines (default 10)")
    parser.add_argument("--side", choices=("server", "client"), help=argparse.SUPPRESS)
    parser.add_argument("config", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.side:
        child_main(args.side, json.loads(args.config))
    duration = args.seconds if args.seconds is not None else args.minutes * 60.0
    if duration <= 0 or args.rate <= 0 or args.interval <= 0:
        parser.error("--minutes/--seconds, --rate and --interval must be positive")
    try:
        return soak(duration, args.rate, args.interval)
    except RuntimeError as exc:  # a side failed or stopped answering
        print(f"result: FAIL: {exc}", flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
