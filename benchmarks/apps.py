"""What runs inside the library under test: server handlers and client loops.

Server side: a handler ``on_message(send, message)`` called on every message
(``send`` is the library's own send function for that connection).  Client
side: loops over a :class:`ClientConn` (the library's own bound methods).
The same code runs for every library and for the raw TCP baseline, so any
difference in the results comes from the library.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable, List, Optional, Union

Message = Union[str, bytes]
Send = Callable[[Message], None]
OnMessage = Callable[[Send, Message], None]


# --------------------------------------------------------------------------
# Server handlers
# --------------------------------------------------------------------------

def make_handler(params: dict, broadcast: Optional[Callable[[str], object]] = None) -> OnMessage:
    """Return the server handler for a workload.

    ``broadcast`` is a callable sending one text message to every connection;
    it is called late (through ``holder``) because it only exists once the
    server is running.
    """
    kind = params["kind"]
    payload = "x" * params["size"]
    if kind in ("echo", "idle"):
        return _echo
    if kind == "stream":
        return _make_stream(payload)
    if kind == "deflate-json":
        from benchmarks.deflate import corpus
        return _make_cycle(corpus())
    if kind == "paced":
        return _make_paced(payload, params["rate"])
    if kind == "latency":
        return _make_broadcast(payload, None)
    if kind == "upload":
        return _make_upload()
    if kind == "broadcast":
        if broadcast is None:
            raise ValueError("broadcast workload needs a broadcast function")
        return _make_broadcast(payload, broadcast)
    raise ValueError(f"unknown workload kind {kind!r}")


def _echo(send: Send, message: Message) -> None:
    send(message)


def _make_stream(payload: str) -> OnMessage:
    def on_message(send: Send, message: Message) -> None:
        for _ in range(int(message)):
            send(payload)
    return on_message


def _make_cycle(texts: List[str]) -> OnMessage:
    """``N`` asks for the first N of ``texts``, cycling (a compressed stream when negotiated)."""
    def on_message(send: Send, message: Message) -> None:
        for n in range(int(message)):
            send(texts[n % len(texts)])
    return on_message


def _make_paced(payload: str, rate: float) -> OnMessage:
    """``N`` asks for N messages at ``rate`` per second, a batch per millisecond tick."""
    from benchmarks.pace import pace

    def on_message(send: Send, message: Message) -> None:
        def emit(k: int) -> None:
            for _ in range(k):
                send(payload)
        pace(rate, int(message), emit)
    return on_message


def _make_upload() -> OnMessage:
    received = [0]

    def on_message(send: Send, message: Message) -> None:
        if isinstance(message, str):
            send(str(received[0]))
            received[0] = 0
        else:
            received[0] += 1
    return on_message


def _make_broadcast(payload: str, broadcast: Optional[Callable[[str], object]]) -> OnMessage:
    """``!N`` sends N messages: broadcast to every connection, or (``broadcast`` None, the
    latency row's load) on this connection; anything else is echoed."""
    def on_message(send: Send, message: Message) -> None:
        if isinstance(message, str) and message[:1] == "!":
            target = broadcast or send
            for _ in range(int(message[1:])):
                target(payload)
        else:
            send(message)
    return on_message


# --------------------------------------------------------------------------
# Client loops
# --------------------------------------------------------------------------

@dataclasses.dataclass
class ClientConn:
    """A library's client connection, reduced to four bound callables."""

    send_text: Callable[[str], object]
    send_binary: Callable[[bytes], object]
    recv: Callable[[], Message]
    close: Callable[[], object]


Sync = Callable[[str], None]


def timed(run: Callable[[int], object], params: dict, sync: Sync) -> float:
    """``run(warmup)`` untimed, then ``run(count)`` between ``sync("start")`` and
    ``sync("end")``; return the seconds of the timed run."""
    run(params["warmup"])
    sync("start")
    start = time.perf_counter()
    run(params["count"])
    seconds = time.perf_counter() - start
    sync("end")
    return seconds


def run_client(conn: ClientConn, params: dict, sync: Sync) -> dict:
    """Run the client side of a workload; return ``count`` and ``seconds``.

    ``sync("start")`` / ``sync("end")`` are called just outside the timed
    section, so the orchestrator can read this process's CPU time.
    """
    loops = {"echo": _client_echo, "stream": _client_stream, "upload": _client_upload,
             "paced": _client_stream, "deflate-json": _client_cycle}
    kind = params["kind"]
    if kind not in loops:
        raise ValueError(f"workload {kind!r} has no client role")
    return loops[kind](conn, params, sync)


def _client_echo(conn: ClientConn, params: dict, sync: Sync) -> dict:
    message = "x" * params["size"]
    send, recv = conn.send_text, conn.recv

    def loop(n: int) -> Message:
        reply: Message = ""
        for _ in range(n):
            send(message)
            reply = recv()
        return reply

    loop(params["warmup"])
    count = params["count"]
    sync("start")
    start = time.perf_counter()
    reply = loop(count)
    seconds = time.perf_counter() - start
    sync("end")
    if reply != message:
        raise AssertionError(f"bad echo: {reply[:40]!r}")
    return {"count": count, "seconds": seconds}


def _client_stream(conn: ClientConn, params: dict, sync: Sync) -> dict:
    recv = conn.recv

    def ask(n: int) -> Message:
        conn.send_text(str(n))
        last: Message = ""
        for _ in range(n):
            last = recv()
        return last

    ask(params["warmup"])
    count = params["count"]
    sync("start")
    start = time.perf_counter()
    last = ask(count)
    seconds = time.perf_counter() - start
    sync("end")
    if last != "x" * params["size"]:
        raise AssertionError(f"bad stream message: {last[:40]!r}")
    return {"count": count, "seconds": seconds}


def _client_cycle(conn: ClientConn, params: dict, sync: Sync) -> dict:
    """Ask for N corpus messages and check every one (the deflate-json stream)."""
    from benchmarks.deflate import corpus
    texts = corpus()
    recv = conn.recv

    def ask(n: int) -> None:
        conn.send_text(str(n))
        for i in range(n):
            if recv() != texts[i % len(texts)]:
                raise AssertionError(f"message {i} of the stream differs")

    return {"count": params["count"], "seconds": timed(ask, params, sync)}


def own_rss_kib() -> int:
    """This process's VmRSS in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def run_idle(connect: Callable[[], ClientConn], params: dict, sync: Sync) -> dict:
    """Hold ``conns`` connections that nobody reads for ``window`` seconds.

    ``sync("start")`` / ``sync("end")`` bracket the window (the process's CPU
    time is read there); the main thread sleeps through it, so whatever CPU
    the process spends is the library's background work.  Afterwards every
    connection must still echo one message (none was closed by keepalive).
    """
    conns: List[ClientConn] = []
    for _ in range(params["conns"]):
        try:
            conns.append(connect())
        except Exception as exc:  # noqa: BLE001 - reported with the count reached
            raise ConnectionError(f"connection {len(conns)} failed: {exc!r}") from exc
    sync("start")
    start = time.perf_counter()
    time.sleep(params["window"])
    seconds = time.perf_counter() - start
    sync("end")
    for n, conn in enumerate(conns):
        conn.send_text("alive?")
        reply = conn.recv()
        if reply != "alive?":
            raise AssertionError(f"connection {n} answered {reply!r} after the idle window")
    return {"count": len(conns), "seconds": seconds}


def _client_upload(conn: ClientConn, params: dict, sync: Sync) -> dict:
    data = b"\xab" * params["size"]
    send = conn.send_binary

    def upload(n: int) -> None:
        for _ in range(n):
            send(data)
        conn.send_text("sync")
        got = conn.recv()
        if int(got) != n:
            raise AssertionError(f"server counted {got!r} of {n} messages")

    count = params["count"]
    return {"count": count, "seconds": timed(upload, params, sync), "bytes": count * params["size"]}
