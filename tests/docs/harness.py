"""Running the documentation's examples: local stand-ins, and the example in a fenced child process."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from helpers import pump

import simplews
from simplews.testing import RecordingServer

ROOT = Path(__file__).resolve().parents[2]
SANDBOX = Path(__file__).with_name("sandbox.py")
#: the names the examples use for outside servers; the stand-ins' certificate carries them all
OUTSIDE_NAMES = ["example.com", "feed.example.com", "telemetry.example.com"]


def _echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


# --- stand-ins for the servers the examples name ---------------------------------------------


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that reaches the stand-ins by the examples' host names.

    ``requests`` keeps ``(target, Proxy-Authorization)`` of every CONNECT; with
    ``credentials`` set, a CONNECT without them gets 407.
    """

    def __init__(self, resolve: Dict[str, Tuple[str, int]], credentials: Optional[str] = None) -> None:
        self.resolve = resolve
        self.expected = None if credentials is None else "Basic " + base64.b64encode(credentials.encode()).decode()
        self.requests: List[Tuple[str, Optional[str]]] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._sockets: List[socket.socket] = []
        self._threads: List[threading.Thread] = []
        self._lock = threading.Lock()
        self._spawn(self._accept)

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name="docs-proxy", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.append(client)
            self._spawn(self._tunnel, client)

    def _tunnel(self, client: socket.socket) -> None:
        client.settimeout(10)
        head = b""
        try:
            while b"\r\n\r\n" not in head and len(head) < 65536:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            lines = head.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target, _ = lines[0].split(" ", 2)
            headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
            auth = headers.get("Proxy-Authorization")
            self.requests.append((target, auth))
            if self.expected is not None and auth != self.expected:
                client.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
                return
            upstream = socket.create_connection(self.resolve[target], timeout=10)
            with self._lock:
                self._sockets.append(upstream)
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            client.settimeout(None)
            upstream.settimeout(None)
            self._spawn(pump, upstream, client)
            pump(client, upstream)
        except (OSError, ValueError, KeyError):
            return
        finally:
            _shut(client)

    def close(self) -> None:
        """Stop accepting, cut every tunnel and join every thread."""
        _shut(self.listener)
        self.listener.close()
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for sock in sockets:
            _shut(sock)
        for thread in threads:
            thread.join(10)
        for sock in sockets:
            sock.close()


def _shut(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


class StandIns:
    """The local servers that examples reach instead of the ones they name."""

    def __init__(self, tmp: Path, ca: Any, cert: Any) -> None:
        self.tmp = tmp
        self.ca = ca
        self.cert = cert
        self._closers: List[Any] = []
        #: the echo server behind ws://127.0.0.1:8765 (the port the examples use for "a server")
        self.echo = self._keep(RecordingServer(on_message=_echo, subprotocols=["chat", "telemetry.v1"]))

    def _keep(self, thing: Any) -> Any:
        self._closers.append(thing)
        return thing

    def tls_echo(self) -> RecordingServer:
        """A TLS echo server holding the certificate of every outside name."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.cert.configure_cert(context)
        return self._keep(RecordingServer(on_message=_echo, subprotocols=["telemetry.v1"], ssl_context=context))

    def proxy(self, resolve: Dict[str, Tuple[str, int]], credentials: Optional[str] = None) -> ConnectProxy:
        """A CONNECT proxy that reaches ``resolve``'s stand-ins."""
        proxy = ConnectProxy(resolve, credentials)
        self._closers.append(proxy)
        return proxy

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts the stand-ins' CA."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def close(self) -> None:
        """Shut every stand-in down."""
        for thing in reversed(self._closers):
            thing.close() if isinstance(thing, ConnectProxy) else thing.shutdown()


# --- an example in a fenced child process ----------------------------------------------------


def read_events(path: Path) -> List[Dict[str, Any]]:
    """The events a sandbox recorded in ``path`` (binds, refusals)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def refusals(path: Path) -> List[str]:
    """Every connection or name lookup the sandbox refused."""
    return [event["refused"] for event in read_events(path) if "refused" in event]


class Example:
    """A documentation example running in its own process group under ``sandbox.py``."""

    def __init__(self, workdir: Path, argv: List[str], env: Dict[str, str], stdin: Optional[str]) -> None:
        self.workdir = workdir
        self.events_path = workdir / "events.jsonl"
        self._out = open(workdir / "stdout.txt", "w+b")  # noqa: SIM115 - closed in finish()
        self._err = open(workdir / "stderr.txt", "w+b")  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=self._out,
            stderr=self._err,
            start_new_session=True,
        )
        if stdin is not None:
            assert self.proc.stdin is not None
            self.proc.stdin.write(stdin.encode())
            self.proc.stdin.close()

    @property
    def stdout(self) -> str:
        """What the example printed so far."""
        return (self.workdir / "stdout.txt").read_text(errors="replace")

    @property
    def stderr(self) -> str:
        """What the example wrote on stderr so far."""
        return (self.workdir / "stderr.txt").read_text(errors="replace")

    def events(self) -> List[Dict[str, Any]]:
        """What the sandbox recorded (binds, refusals)."""
        return read_events(self.events_path)

    @property
    def refused(self) -> List[str]:
        """Every outside connection the sandbox refused."""
        return refusals(self.events_path)

    def _wait(self, what: str, probe: Any, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            found = probe()
            if found:
                return found
            if self.proc.poll() is not None:
                found = probe()
                if found:
                    return found
                raise AssertionError(f"example ended ({self.proc.returncode}) before {what}\n{self.report()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout} s\n{self.report()}")
            time.sleep(0.02)

    def port(self, fixed: int, timeout: float = 30) -> int:
        """The port actually bound where the example asked for ``fixed``."""
        return self._wait(
            f"bind to port {fixed}",
            lambda: next((e["bound"][1] for e in self.events() if "bound" in e and e["bound"][0] == fixed), None),
            timeout,
        )

    def output(self, pattern: str, timeout: float = 30) -> re.Match:
        """The first match of ``pattern`` in stdout, waiting for it."""
        return self._wait(repr(pattern), lambda: re.search(pattern, self.stdout), timeout)

    def until(self, what: str, predicate: Any, timeout: float = 30) -> Any:
        """Wait (bounded) for ``predicate()``, failing early if the example ends."""
        return self._wait(what, predicate, timeout)

    def finish(self, timeout: float = 90) -> int:
        """Wait for the example to end by itself; its exit code."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"example still running after {timeout} s\n{self.report()}") from None

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C, as a user would stop it (SIGINT to its process group); its exit code."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return self.finish(timeout)

    def kill(self) -> None:
        """Make sure nothing of the example is left running."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(30)
        self._out.close()
        self._err.close()

    def report(self) -> str:
        """Exit code, output and refusals, for assertion messages."""
        return f"exit {self.proc.poll()}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}\n--- refused {self.refused}"


class Runner:
    """Starts examples in a work directory with a sandbox configuration."""

    def __init__(self, tmp: Path, standins: StandIns) -> None:
        self.tmp = tmp
        self.standins = standins
        self.started: List[Example] = []
        self.bin = tmp / "bin"
        self.bin.mkdir()
        # the command line of the docs runs through the sandbox as well
        wrapper = self.bin / "simplews"
        wrapper.write_text('#!/bin/sh\nexec "$DOCS_PYTHON" "$DOCS_SANDBOX" "$DOCS_SANDBOX_CONFIG" -m simplews "$@"\n')
        wrapper.chmod(0o755)
        self.cafile = tmp / "standin-ca.pem"
        standins.ca.cert_pem.write_to_path(str(self.cafile))

    def default_resolve(self) -> Dict[str, Tuple[str, int]]:
        """ws://127.0.0.1:8765 and ws://localhost:8765 reach the echo stand-in."""
        port = self.standins.echo.server.port
        return {"127.0.0.1:8765": ("127.0.0.1", port), "localhost:8765": ("127.0.0.1", port)}

    def start(
        self,
        target: List[str],
        *,
        resolve: Optional[Dict[str, Tuple[str, int]]] = None,
        stdin: Optional[str] = None,
        shell: Optional[str] = None,
    ) -> Example:
        """Run ``python sandbox.py CONFIG *target`` (or ``bash -c shell``) in a new work directory."""
        config = self.configure(resolve)
        workdir = config.parent
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower() and not k.startswith("PYTEST")}
        env.update(
            PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]),
            PYTHONUNBUFFERED="1",
            PATH=os.pathsep.join([str(self.bin), env.get("PATH", "")]),
            DOCS_PYTHON=sys.executable,
            DOCS_SANDBOX=str(SANDBOX),
            DOCS_SANDBOX_CONFIG=str(config),
        )
        argv = ["bash", "-c", shell] if shell is not None else [sys.executable, str(SANDBOX), str(config), *target]
        example = Example(workdir, argv, env, stdin)
        self.started.append(example)
        return example

    def configure(self, resolve: Optional[Dict[str, Tuple[str, int]]] = None) -> Path:
        """A new work directory with a sandbox configuration; the configuration's path.

        The directory also holds ``cert.pem`` and ``key.pem`` (the stand-ins' certificate),
        which ``simplews serve --certfile cert.pem --keyfile key.pem`` reads.
        """
        workdir = self.tmp / f"run{len(list(self.tmp.glob('run*')))}"
        workdir.mkdir()
        self.standins.cert.cert_chain_pems[0].write_to_path(str(workdir / "cert.pem"))
        self.standins.cert.private_key_pem.write_to_path(str(workdir / "key.pem"))
        mapping = {**self.default_resolve(), **(resolve or {})}
        config = {
            "events": str(workdir / "events.jsonl"),
            "resolve": {key: list(value) for key, value in mapping.items()},
            "cafile": str(self.cafile),
        }
        (workdir / "config.json").write_text(json.dumps(config))
        return workdir / "config.json"

    def write(self, code: str, name: str = "example.py") -> Path:
        """``code`` in a file of its own directory."""
        folder = self.tmp / f"code{len(list(self.tmp.glob('code*')))}"
        folder.mkdir()
        (folder / name).write_text(code)
        return folder / name

    def script(self, code: str, **options: Any) -> Example:
        """Run ``code`` as a script."""
        return self.start([str(self.write(code))], **options)

    def close(self) -> None:
        """Kill whatever is still running."""
        for example in self.started:
            example.kill()
