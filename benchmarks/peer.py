"""The fast fixed peer: a minimal hand-written WebSocket / raw TCP endpoint.

The same peer faces every library, so it must never be the bottleneck:
frames are pre-built once and sent with ``sendall`` (batched where the
pattern allows), data is read with ``recv_into`` a large reusable buffer,
and where the expected bytes are known in advance (replies to our own
requests, streams, broadcasts) the peer only counts bytes instead of parsing
frames.  It does not validate what it receives (no UTF-8 check, binary
payloads are skipped unread); correctness is spot-checked on the last
message of each run.  With TLS files it speaks TLS (the ``ssl`` module's
defaults, TLS 1.3 checked) and is otherwise the same code.
"""

from __future__ import annotations

import os
import select
import selectors
import socket
import statistics
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple

from benchmarks.apps import timed
from benchmarks.codec import (
    CODECS,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Event,
    Scanner,
    ws_client_upgrade,
)
from benchmarks.deflate import CLIENT_OFFER, Deflater, MessageReader, client_deflater, compressed_frame, corpus, serve_deflate
from benchmarks.pace import pace
from benchmarks.tls import TlsFiles, check_version, server_context, wrap_client

RECV_BUFFER = 4 * 1024 * 1024
STREAM_BATCH = 1000
Sync = Callable[[str], None]


def _nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


# --------------------------------------------------------------------------
# Fixed server (faces the libraries' clients: "client role" workloads)
# --------------------------------------------------------------------------

class FixedServer:
    """Thread-per-connection fixed server for the client-role workloads.

    Behaviour depends on the workload kind:

    * ``echo``: answer every data message with the pre-built echo frame;
    * ``stream``: a text message ``N`` asks for N pre-built messages;
    * ``paced``: the same, sent at ``rate`` messages/s (a batch per ms tick);
    * with ``deflate``: :func:`benchmarks.deflate.serve_deflate` (compressed JSON streams);
    * ``upload``: count data messages; a text message asks for the count.
    """

    def __init__(self, codec_name: str, params: dict, timeout: float,
                 tls: Optional[TlsFiles] = None) -> None:
        self.codec = CODECS[codec_name]
        self.params = params
        self.timeout = timeout
        self.context = server_context(tls) if tls else None
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        payload = b"x" * params["size"]
        self.reply = self.codec.frame(payload, text=True, masked=False)

    def start(self) -> None:
        """Start accepting in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting (connection threads are daemons)."""
        self.listener.close()

    def _accept_loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            _nodelay(sock)
            sock.settimeout(self.timeout)
            if self.context is not None:
                sock = self._tls(sock)
            with sock:
                if self.params["deflate"]:
                    serve_deflate(sock, self.codec, bytearray(RECV_BUFFER))
                else:
                    self._serve_frames(sock)
        except (OSError, ValueError):
            sock.close()

    def _tls(self, sock: socket.socket) -> socket.socket:
        """Server-side TLS handshake; a failure is logged (the client only sees a close)."""
        assert self.context is not None
        tls: Optional[socket.socket] = None
        try:
            tls = self.context.wrap_socket(sock, server_side=True)
            check_version(tls)
            return tls
        except OSError as exc:
            print(f"fixed server: TLS failed: {exc!r}", file=sys.stderr, flush=True)
            (tls or sock).close()
            raise

    def _serve_frames(self, sock: socket.socket) -> None:
        codec = self.codec
        scanner = Scanner(codec)
        buf = bytearray(RECV_BUFFER)
        view = memoryview(buf)
        kind = self.params["kind"]
        reply = self.reply
        pending = codec.server_handshake(sock)
        count = 0
        while True:
            if pending:
                events, pending = scanner.feed(memoryview(pending)), b""
            else:
                n = sock.recv_into(buf)
                if not n:
                    return
                events = scanner.feed(view[:n])
            replies = 0
            for opcode, fin, payload in events:
                if opcode == OP_CLOSE:
                    sock.sendall(codec.close_frame(masked=False))
                    return
                if opcode == OP_PING:
                    sock.sendall(codec.frame(payload, False, False, opcode=OP_PONG))
                elif opcode == OP_PONG or not fin:
                    continue
                elif kind == "echo":
                    replies += 1
                elif kind == "stream" and opcode == OP_TEXT:
                    self._send_stream(sock, int(payload or b"0"))
                elif kind == "paced" and opcode == OP_TEXT:
                    self._send_paced(sock, int(payload or b"0"))
                elif kind == "upload" and opcode == OP_TEXT:
                    sock.sendall(codec.frame(str(count).encode(), True, False))
                    count = 0
                else:
                    count += 1
            if replies:
                sock.sendall(reply * replies)

    def _send_paced(self, sock: socket.socket, n: int) -> None:
        reply = self.reply
        pace(self.params["rate"], n, lambda k: sock.sendall(reply * k))

    def _send_stream(self, sock: socket.socket, n: int) -> None:
        batch = self.reply * STREAM_BATCH
        full, rest = divmod(n, STREAM_BATCH)
        for _ in range(full):
            sock.sendall(batch)
        if rest:
            sock.sendall(self.reply * rest)


class IdleServer:
    """The fixed server of ``idle-cpu``: holds connections and sends nothing.

    One thread and one selector for all connections (10,000 threads with
    4 MiB buffers would not fit): it accepts, does the handshake, then only
    answers what arrives: a pong for each ping, a close for a close, and an
    echo of a data message (the client's check, after the measured window,
    that every connection is still open).
    """

    def __init__(self, codec_name: str, params: dict, timeout: float) -> None:
        self.codec = CODECS[codec_name]
        self.timeout = timeout
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.listener.getsockname()[1]
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ)
        self.buf = bytearray(64 * 1024)
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> None:
        """Start serving in a daemon thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; the connections are dropped with the process."""
        self._stopped = True
        self._thread.join(2.0)
        self.listener.close()

    def _loop(self) -> None:
        while not self._stopped:
            for key, _events in self.selector.select(0.5):
                if key.fileobj is self.listener:
                    self._accept()
                else:
                    self._readable(key.fileobj, key.data)  # type: ignore[arg-type]

    def _accept(self) -> None:
        sock, _ = self.listener.accept()
        try:
            _nodelay(sock)
            sock.settimeout(self.timeout)
            pending = self.codec.server_handshake(sock)
            sock.setblocking(False)
        except OSError as exc:
            print(f"idle server: handshake failed: {exc!r}", file=sys.stderr, flush=True)
            sock.close()
            return
        scanner = Scanner(self.codec)
        self.selector.register(sock, selectors.EVENT_READ, scanner)
        if pending:
            self._answer(sock, scanner.feed(memoryview(pending)))

    def _readable(self, sock: socket.socket, scanner: Scanner) -> None:
        try:
            n = sock.recv_into(self.buf)
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if not n or not self._answer(sock, scanner.feed(memoryview(self.buf)[:n])):
            self.selector.unregister(sock)
            sock.close()

    def _answer(self, sock: socket.socket, events: List[Event]) -> bool:
        """Reply to what arrived (small frames: a non-blocking send takes them);
        False once the connection is over."""
        codec = self.codec
        try:
            for opcode, _fin, payload in events:
                if opcode == OP_CLOSE:
                    sock.sendall(codec.close_frame(masked=False))
                    return False
                if opcode == OP_PING:
                    sock.sendall(codec.frame(payload or b"", False, False, opcode=OP_PONG))
                elif opcode == OP_TEXT:
                    sock.sendall(codec.frame(payload or b"", True, False))
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------
# Fixed clients (face the libraries' servers: "server role" workloads)
# --------------------------------------------------------------------------

class FixedClient:
    """Fixed client connections plus the server-role traffic patterns.

    Every public ``run_*`` method returns a result dict with at least
    ``count`` (operations timed) and ``seconds``, and calls ``sync("start")``
    / ``sync("end")`` just outside the timed section (the orchestrator reads
    the library process's CPU time there).
    """

    def __init__(self, codec_name: str, port: int, params: dict, timeout: float,
                 tls: Optional[TlsFiles] = None) -> None:
        self.codec = CODECS[codec_name]
        self.port = port
        self.tls = tls
        self.params = params
        self.timeout = timeout
        self.buf = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buf)
        payload = b"x" * params["size"]
        self.request = self.codec.frame(payload, text=True, masked=True)
        self.reply = self.codec.frame(payload, text=True, masked=False)
        self._first_frames: Dict[Tuple[int, bool], bytes] = {}

    # -- connections -------------------------------------------------------

    def connect(self) -> socket.socket:
        """Open one connection and complete the handshake."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        _nodelay(sock)
        if self.tls is not None:
            sock = wrap_client(sock, self.tls)
        if self.codec.client_handshake(sock, self.port):
            raise ConnectionError("unexpected data right after the handshake")
        return sock

    def close(self, sock: socket.socket) -> None:
        """Send a close frame (WebSocket) and close without waiting."""
        try:
            sock.sendall(self.codec.close_frame(masked=True))
        except OSError:
            pass
        sock.close()

    def _recv_bytes(self, sock: socket.socket, nbytes: int) -> int:
        """Receive exactly ``nbytes`` (counted, discarded); return the last chunk size."""
        buf = self.buf
        last = 0
        while nbytes > 0:
            last = sock.recv_into(buf)
            if not last:
                raise ConnectionError("server closed the connection")
            nbytes -= last
        if nbytes:
            raise ConnectionError(f"server sent {-nbytes} unexpected bytes")
        return last

    def _check_tail(self, last: int, expected: bytes) -> None:
        if last >= len(expected) and self.buf[last - len(expected):last] != expected:
            raise ConnectionError("unexpected bytes at the end of the run")

    def _recv_text(self, sock: socket.socket) -> bytes:
        """Receive frames until a text message arrives; return its payload."""
        scanner = Scanner(self.codec)
        for _ in range(1_000_000):
            n = sock.recv_into(self.buf)
            if not n:
                raise ConnectionError("server closed the connection")
            for opcode, _fin, payload in scanner.feed(self.view[:n]):
                if opcode == OP_TEXT:
                    return payload or b""
        raise ConnectionError("no text message received")

    def _echo_once(self, sock: socket.socket) -> None:
        sock.sendall(self.request)
        last = self._recv_bytes(sock, len(self.reply))
        self._check_tail(last, self.reply)

    # -- workloads ---------------------------------------------------------

    def run_echo(self, sync: Sync) -> dict:
        """Round trips of one text message, waiting for each echo."""
        sock = self.connect()
        request, size = self.request, len(self.reply)
        sendall, recv_bytes = sock.sendall, self._recv_bytes

        def loop(n: int) -> None:
            for _ in range(n):
                sendall(request)
                recv_bytes(sock, size)

        loop(self.params["warmup"])
        count = self.params["count"]
        sync("start")
        start = time.perf_counter()
        loop(count)
        seconds = time.perf_counter() - start
        sync("end")
        self._echo_once(sock)
        self.close(sock)
        return {"count": count, "seconds": seconds}

    def run_stream(self, sync: Sync) -> dict:
        """Ask the server for N messages and count them (by bytes) as they arrive."""
        sock = self.connect()

        def ask(n: int) -> None:
            sock.sendall(self.codec.frame(str(n).encode(), text=True, masked=True))
            last = self._recv_bytes(sock, n * len(self.reply))
            self._check_tail(last, self.reply)

        ask(self.params["warmup"])
        count = self.params["count"]
        sync("start")
        start = time.perf_counter()
        ask(count)
        seconds = time.perf_counter() - start
        sync("end")
        self.close(sock)
        return {"count": count, "seconds": seconds}

    def run_upload(self, sync: Sync) -> dict:
        """Send pre-built masked binary frames, then ask for the received count."""
        sock = self.connect()
        frame = self.codec.frame(b"\xab" * self.params["size"], text=False, masked=True)
        sync_request = self.codec.frame(b"sync", text=True, masked=True)

        def upload(n: int) -> None:
            for _ in range(n):
                sock.sendall(frame)
            sock.sendall(sync_request)
            got = int(self._recv_text(sock))
            if got != n:
                raise ConnectionError(f"server counted {got} of {n} messages")

        seconds = timed(upload, self.params, sync)
        self.close(sock)
        count = self.params["count"]
        return {"count": count, "seconds": seconds, "bytes": count * self.params["size"]}

    run_paced = run_stream  # the library's server paces what it sends

    # -- permessage-deflate --------------------------------------------------

    def connect_deflate(self) -> Tuple[socket.socket, Deflater, MessageReader]:
        """Open one connection negotiating permessage-deflate (raw: zlib by convention)."""
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        _nodelay(sock)
        if self.tls is not None:
            sock = wrap_client(sock, self.tls)
        reader = MessageReader(self.codec)
        if self.codec.name == "raw":
            return sock, Deflater(), reader
        head, rest = ws_client_upgrade(sock, self.port, CLIENT_OFFER)
        if rest:
            raise ConnectionError("unexpected data right after the handshake")
        return sock, client_deflater(head), reader

    def _read_messages(self, sock: socket.socket, reader: MessageReader, n: int) -> Tuple[int, bytes]:
        """Read ``n`` data messages (inflated); return their total length and the last one."""
        total, last, buf = 0, b"", self.buf
        while n > 0:
            got = sock.recv_into(buf)
            if not got:
                raise ConnectionError("server closed the connection")
            for opcode, payload in reader.feed(bytes(self.view[:got])):
                if opcode < OP_CLOSE:
                    total, last, n = total + len(payload), payload, n - 1
        return total, last

    def run_deflate_json(self, sync: Sync) -> dict:
        """Ask for N corpus messages (the request itself uncompressed), read and inflate every one."""
        sock, _deflater, reader = self.connect_deflate()
        texts = [t.encode() for t in corpus()]

        def ask(n: int) -> None:
            sock.sendall(self.codec.frame(str(n).encode(), text=True, masked=True))
            total, last = self._read_messages(sock, reader, n)
            expected = sum(len(texts[i % len(texts)]) for i in range(n))
            if last != texts[(n - 1) % len(texts)] or total != expected:
                raise ConnectionError(f"wrong messages: {total} bytes of {expected}, last {last[:40]!r}")

        seconds = timed(ask, self.params, sync)
        self.close(sock)
        return {"count": self.params["count"], "seconds": seconds}

    def _deflate_echoed(self, socks: List[socket.socket]) -> None:
        """Open a compressed connection (into ``socks``) that echoes one compressed corpus message."""
        text = corpus(1)[0].encode()
        sock, deflater, reader = self.connect_deflate()
        socks.append(sock)
        if deflater.key not in self._first_frames:  # a connection's first message: the same bytes on every one
            self._first_frames[deflater.key] = compressed_frame(self.codec, deflater.compress(text), True)
        sock.sendall(self._first_frames[deflater.key])
        if self._read_messages(sock, reader, 1)[1] != text:
            raise ConnectionError("wrong echo of the compressed message")

    def _open_echoed(self, n: int, socks: List[socket.socket]) -> None:
        """Open ``n`` connections, one echo each (so the server's handler runs)."""
        for _ in range(n):
            try:
                if self.params["deflate"]:
                    self._deflate_echoed(socks)
                    continue
                sock = self.connect()
                socks.append(sock)
                self._echo_once(sock)
            except OSError as exc:
                raise ConnectionError(f"connection {len(socks)} failed: {exc!r}") from exc

    def run_idle(self, sync: Sync) -> dict:
        """Open connections that stay idle; the orchestrator reads server RSS."""
        socks: List[socket.socket] = []
        self._open_echoed(self.params["warmup"], socks)
        sync("warm")
        conns = self.params["conns"]
        start = time.perf_counter()
        self._open_echoed(conns, socks)
        seconds = time.perf_counter() - start
        sync("loaded")
        for sock in socks:
            self.close(sock)
        return {"count": conns, "seconds": seconds}

    def run_broadcast(self, sync: Sync) -> dict:
        """Open N connections, trigger broadcasts, count deliveries on all of them."""
        socks: List[socket.socket] = []
        conns = self.params["conns"]
        self._open_echoed(conns, socks)
        for sock in socks:
            sock.setblocking(False)
        poller = select.epoll(sizehint=conns)
        try:
            self._broadcast(socks, poller, self.params["warmup"])
            count = self.params["count"]
            sync("start")
            start = time.perf_counter()
            self._broadcast(socks, poller, count)
            seconds = time.perf_counter() - start
            sync("end")
        finally:
            poller.close()
        for sock in socks:
            sock.setblocking(True)
            self.close(sock)
        return {"count": count * conns, "seconds": seconds}

    def _broadcast(self, socks: List[socket.socket], poller: select.epoll, n: int) -> None:
        by_fd: Dict[int, socket.socket] = {s.fileno(): s for s in socks}
        remaining: Dict[int, int] = {fd: n * len(self.reply) for fd in by_fd}
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        trigger = self.codec.frame(b"!%d" % n, text=True, masked=True)
        socks[0].setblocking(True)
        socks[0].sendall(trigger)
        socks[0].setblocking(False)
        buf = self.buf
        deadline = time.monotonic() + self.timeout
        while remaining:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(remaining)} clients still waiting")
            for fd, _ev in poller.poll(1.0):
                try:
                    got = by_fd[fd].recv_into(buf)
                except BlockingIOError:
                    continue
                if not got:
                    raise ConnectionError("server closed a connection")
                left = remaining[fd] - got
                if left > 0:
                    remaining[fd] = left
                    continue
                if left < 0:
                    raise ConnectionError("server sent unexpected bytes")
                self._check_tail(got, self.reply)
                del remaining[fd]
                poller.unregister(fd)

    # -- latency under load --------------------------------------------------

    def run_latency(self, sync: Sync) -> dict:
        """Echo round trips of one connection while ``conns`` others each stream from the
        server without end; the streams are drained by a forked child process (so that
        reading them never holds up this one's timing)."""
        load: List[socket.socket] = []
        ask = self.codec.frame(b"!%d" % 10 ** 12, text=True, masked=True)
        for _ in range(self.params["conns"]):
            sock = self.connect()
            load.append(sock)
            sock.sendall(ask)
        drainer = _fork_drainer(load, self.buf)
        load_rate = 0.0
        try:
            sock = self.connect()
            rtts = self._round_trips(sock, self.params["warmup"])
            count = self.params["count"]
            sync("start")
            start = time.perf_counter()
            rtts = self._round_trips(sock, count)
            seconds = time.perf_counter() - start
            sync("end")
            self.close(sock)
        finally:
            load_rate = _stop_drainer(*drainer)
            for sock in load:
                sock.close()
        rtts.sort()
        return {"count": count, "seconds": seconds, "load_bytes_per_s": load_rate, "p50_us": statistics.median(rtts),
                "p99_us": rtts[min(len(rtts) - 1, int(0.99 * len(rtts)))]}

    def _round_trips(self, sock: socket.socket, n: int) -> List[float]:
        """``n`` echoes of the request, each one's round trip in microseconds."""
        request, size, clock = self.request, len(self.reply), time.perf_counter_ns
        rtts = []
        for _ in range(n):
            begin = clock()
            sock.sendall(request)
            last = self._recv_bytes(sock, size)
            rtts.append((clock() - begin) / 1000.0)
        self._check_tail(last, self.reply)
        return rtts


def _fork_drainer(socks: List[socket.socket], buf: bytearray) -> Tuple[int, int, int]:
    """Fork a child reading (and discarding) everything ``socks`` receive until the
    pipe's write end is closed; return (its pid, that write end, the read end of the
    pipe on which it reports the bytes it read, or -1 if a connection closed first)."""
    stop_read, stop_write = os.pipe()
    report_read, report_write = os.pipe()
    pid = os.fork()
    if pid:
        os.close(stop_read)
        os.close(report_write)
        return pid, stop_write, report_read
    total, began = -1, time.monotonic()
    try:
        os.close(stop_write)
        total = _drain(socks, buf, stop_read)
    finally:  # a child must never return into the worker
        os.write(report_write, b"%d %f" % (total, time.monotonic() - began))
        os._exit(0)


def _drain(socks: List[socket.socket], buf: bytearray, stop: int) -> int:
    """Read every socket until ``stop`` is readable; the bytes read, or -1 if one closed."""
    poller = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    poller.register(stop, select.EPOLLIN)
    total = 0
    while True:
        for fd, _ev in poller.poll(1.0):
            if fd == stop:
                return total
            got = by_fd[fd].recv_into(buf)
            if not got:
                return -1
            total += got


def _stop_drainer(pid: int, stop: int, report: int) -> float:
    """Stop the drainer and reap it (killed if it does not end within 5 s); the bytes/s it read."""
    os.close(stop)
    ready, _, _ = select.select([report], [], [], 5.0)
    text = os.read(report, 64) if ready else b""
    os.close(report)
    if not ready:
        os.kill(pid, 9)
    os.waitpid(pid, 0)
    total, seconds = text.split() if text else (b"-1", b"1")
    if int(total) < 0:
        raise ConnectionError("a load connection closed (or the drainer failed) during the run")
    return int(total) / float(seconds)
