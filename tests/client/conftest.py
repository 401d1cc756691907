"""Fixtures for the client tests: a real TLS server, real HTTP and SOCKS proxies, and hostile peers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, List, Optional, Tuple

import pytest
import trustme
from helpers import accepts, stop_process, wait_for

import simplews


def _echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


# --- TLS ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A certificate authority made for this test run."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A server certificate for localhost, 127.0.0.1 and ::1."""
    return ca.issue_cert("localhost", "127.0.0.1", "::1")


@pytest.fixture
def server_tls(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """A server-side TLS context that records the SNI name each client sends."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(ctx)
    ctx.sni_names = []  # type: ignore[attr-defined]

    def remember(sslobj: Any, name: Optional[str], _ctx: Any) -> None:
        ctx.sni_names.append(name)  # type: ignore[attr-defined]

    ctx.sni_callback = remember
    return ctx


@pytest.fixture
def client_tls(ca: trustme.CA) -> ssl.SSLContext:
    """A client-side context that trusts the test CA (and checks host names)."""
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


@pytest.fixture
def tls_server(server_tls: ssl.SSLContext) -> Iterator[simplews.Server]:
    """A simplews echo server speaking TLS on 127.0.0.1 (its ``ssl_context`` has ``sni_names``)."""
    with simplews.serve(on_message=_echo, port=0, ssl_context=server_tls) as server:
        yield server


# --- a real HTTP CONNECT proxy ------------------------------------------------------------


class Tinyproxy:
    """A tinyproxy process on 127.0.0.1 with a generated configuration."""

    def __init__(self, workdir: Path, *, auth: Optional[str] = None, connect_ports: Optional[List[int]] = None) -> None:
        self.workdir = workdir
        self.auth = auth
        self.connect_ports = connect_ports
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.log = workdir / "tinyproxy.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:port`` (without credentials)."""
        return f"http://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy URL carrying credentials."""
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def start(self, binary: str) -> None:
        """Start the process on a free port and wait until it accepts connections."""
        for _ in range(5):  # the free port may be taken between probing and binding
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            lines = [
                f"Port {self.port}",
                "Listen 127.0.0.1",
                "Timeout 30",
                "MaxClients 50",
                "LogLevel Info",
                f'LogFile "{self.log}"',
                "Allow 127.0.0.1",
                "DisableViaHeader Yes",
            ]
            if self.auth:
                lines.append(f"BasicAuth {self.auth}")
            for port in self.connect_ports or []:
                lines.append(f"ConnectPort {port}")
            conf = self.workdir / "tinyproxy.conf"
            conf.write_text("\n".join(lines) + "\n")
            self.proc = subprocess.Popen(
                [binary, "-d", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            if wait_for(lambda: self.proc.poll() is not None or accepts(self.port), timeout=10):
                if self.proc.poll() is None:
                    return
        raise RuntimeError(f"tinyproxy did not start; log: {self.log.read_text() if self.log.exists() else ''}")

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        stop_process(self.proc)

    def log_text(self) -> str:
        """What tinyproxy logged so far."""
        return _read_log(self.log)


def _read_log(path: Path) -> str:
    """A process's log file as text so far ("" before it exists)."""
    return path.read_text(errors="replace") if path.exists() else ""


def tinyproxy_binary() -> Optional[str]:
    """The tinyproxy executable, if installed (``.ci/run`` installs it)."""
    return shutil.which("tinyproxy") or next(
        (p for p in ("/usr/bin/tinyproxy", "/usr/sbin/tinyproxy") if os.path.exists(p)), None
    )


@pytest.fixture
def proxy_factory(tmp_path: Path) -> Iterator[Callable[..., Tinyproxy]]:
    """Start tinyproxy processes (``auth="user pass"``, ``connect_ports=[...]``); stopped after the test."""
    binary = tinyproxy_binary()
    if binary is None:
        pytest.skip("tinyproxy is not installed and could not be (needs apt-get as root; see .ci/run)")
    proxies: List[Tinyproxy] = []

    def start(**kwargs: Any) -> Tinyproxy:
        workdir = tmp_path / f"proxy{len(proxies)}"
        workdir.mkdir()
        proxy = Tinyproxy(workdir, **kwargs)
        proxies.append(proxy)
        proxy.start(binary)
        return proxy

    yield start
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def proxy(proxy_factory: Callable[..., Tinyproxy]) -> Tinyproxy:
    """An open tinyproxy (no authentication, CONNECT to any port)."""
    return proxy_factory()


# --- the same proxy behind TLS: stunnel in front of tinyproxy ------------------------------------


class Stunnel:
    """A stunnel process on 127.0.0.1 that ends TLS (a certificate of its own CA) and forwards to a local port."""

    def __init__(self, workdir: Path, cert: trustme.LeafCert, target: int) -> None:
        self.workdir = workdir
        self.cert = cert
        self.target = target
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0
        self.log = workdir / "stunnel.log"

    def start(self, binary: str) -> None:
        """Start on a free port and wait until it accepts connections."""
        pem = self.workdir / "proxy.pem"
        self.cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        pem.chmod(0o600)
        for _ in range(5):  # the free port may be taken between probing and binding
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            conf = self.workdir / "stunnel.conf"
            self.log.unlink(missing_ok=True)
            conf.write_text(
                f"foreground = yes\npid =\ndebug = info\noutput = {self.log}\n"
                f"[proxy]\naccept = 127.0.0.1:{self.port}\nconnect = 127.0.0.1:{self.target}\ncert = {pem}\n"
            )
            self.proc = subprocess.Popen([binary, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # stunnel says when it listens (a probe would count as a client); it exits if the bind fails
            if wait_for(lambda: self.proc.poll() is not None or "Accepting new connections" in _read_log(self.log), timeout=10):
                if self.proc.poll() is None:
                    return
        raise RuntimeError(f"stunnel did not start; log: {_read_log(self.log)}")

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        stop_process(self.proc)

    def log_text(self) -> str:
        """What stunnel logged so far."""
        return _read_log(self.log)


@pytest.fixture(scope="session")
def proxy_ca() -> trustme.CA:
    """The certificate authority of the TLS proxy: not the server's, so that each context is checked on its own."""
    return trustme.CA()


@pytest.fixture
def tls_proxy(proxy: Tinyproxy, proxy_ca: trustme.CA, tmp_path: Path) -> Iterator[Tuple[Stunnel, Tinyproxy]]:
    """``https://127.0.0.1:port``: stunnel (certificate for 127.0.0.1 from ``proxy_ca``) in front of tinyproxy."""
    binary = shutil.which("stunnel4") or shutil.which("stunnel")
    if binary is None:
        pytest.skip("stunnel4 is not installed and could not be (needs apt-get as root; see .ci/run)")
    workdir = tmp_path / "stunnel"
    workdir.mkdir()
    tunnel = Stunnel(workdir, proxy_ca.issue_cert("127.0.0.1"), proxy.port)
    try:
        tunnel.start(binary)
        yield tunnel, proxy
    finally:
        tunnel.stop()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Clear every proxy variable so the machine's environment cannot change a test."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


@pytest.fixture(autouse=True)
def _isolate_proxy_env(no_proxy_env: pytest.MonkeyPatch) -> None:
    """Every client test starts without proxy variables."""


# --- real SOCKS servers ---------------------------------------------------------------------

#: siosocks' own command line, with its debug log (each "connect call HOST:PORT") switched on
_SIOSOCKS = (
    "import logging, runpy, sys; logging.basicConfig(level=logging.DEBUG, format='%(name)s: %(message)s'); "
    "sys.argv[0] = 'siosocks'; runpy.run_module('siosocks', run_name='__main__')"
)


class SocksServer:
    """A SOCKS server process on 127.0.0.1; what it prints is its log.

    ``kind`` is ``microsocks`` (SOCKS5, C, from Debian), ``siosocks`` (SOCKS4, SOCKS4a
    and SOCKS5, Python) or ``pproxy`` (SOCKS4 and SOCKS5, Python: it lacks SOCKS4a).
    """

    def __init__(self, kind: str, workdir: Path, *, user: Optional[str] = None, password: Optional[str] = None) -> None:
        self.kind = kind
        self.user = user
        self.password = password
        self.log = workdir / f"{kind}.log"
        self.proc: Optional[subprocess.Popen] = None
        self.port = 0

    def argv(self, port: int) -> List[str]:
        """The command line that serves on 127.0.0.1:port."""
        if self.kind == "microsocks":
            auth = ["-u", self.user, "-P", self.password or ""] if self.user else []
            return [shutil.which("microsocks") or "microsocks", "-i", "127.0.0.1", "-p", str(port), *auth]
        if self.kind == "siosocks":
            return [sys.executable, "-c", _SIOSOCKS, "--host", "127.0.0.1", "--port", str(port),
                    "--socks", "4", "--socks", "5"]  # fmt: skip
        users = f"#{self.user}" if self.user else ""  # pproxy's SOCKS4 checks the user id against it
        return [sys.executable, "-m", "pproxy", "-v", "-l", f"socks4+socks5://127.0.0.1:{port}{users}"]

    def url(self, scheme: str, user: Optional[str] = None, password: Optional[str] = None) -> str:
        """``scheme://[user[:password]@]127.0.0.1:port``."""
        cred = f"{user}:{password}@" if password is not None else (f"{user}@" if user else "")
        return f"{scheme}://{cred}127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process on a free port and wait until it accepts connections."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for _ in range(5):  # the free port may be taken between probing and binding
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            with open(self.log, "ab") as out:
                self.proc = subprocess.Popen(self.argv(self.port), stdout=out, stderr=subprocess.STDOUT, env=env)
            if wait_for(lambda: self.proc.poll() is not None or self._ready(), timeout=20) and self.proc.poll() is None:
                return
        raise RuntimeError(f"{self.kind} did not start; log: {self.log_text()}")

    def _ready(self) -> bool:
        """Whether the server listens: the Python ones say so (a probe would log a failed exchange)."""
        if self.kind == "microsocks":  # prints nothing until a client connects
            return accepts(self.port)
        return f"127.0.0.1:{self.port}" in self.log_text()

    def pause(self) -> None:
        """Stop the process (SIGSTOP): the kernel still accepts connections, nobody answers."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        stop_process(self.proc)

    def log_text(self) -> str:
        """What the server printed so far."""
        return _read_log(self.log)


def _socks_available(kind: str) -> Optional[str]:
    """Why a SOCKS server of ``kind`` cannot run here (``None`` if it can)."""
    try:
        import python_socks  # noqa: F401
    except ImportError:
        return "python-socks is not installed (the socks extra)"
    if kind == "microsocks":
        return None if shutil.which("microsocks") else "microsocks is not installed (needs apt-get as root; see .ci/run)"
    try:
        __import__(kind)
    except ImportError:
        return f"{kind} is not installed (the test extra)"
    return None


@pytest.fixture
def socks_factory(tmp_path: Path) -> Iterator[Callable[..., SocksServer]]:
    """Start SOCKS server processes (``kind``, ``user=``, ``password=``); stopped after the test."""
    servers: List[SocksServer] = []

    def start(kind: str, **kwargs: Any) -> SocksServer:
        reason = _socks_available(kind)
        if reason:
            pytest.skip(reason)
        workdir = tmp_path / f"socks{len(servers)}"
        workdir.mkdir()
        server = SocksServer(kind, workdir, **kwargs)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


# --- raw peers ----------------------------------------------------------------------------


class RawPeer:
    """A raw TCP listener on 127.0.0.1 run by a thread; ``behaviour(conn)`` handles each client."""

    def __init__(self, behaviour: Callable[[socket.socket], None], family: int = socket.AF_INET) -> None:
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.behaviour = behaviour
        self.conns: List[socket.socket] = []
        self.requests: List[bytes] = []
        self._stopped = threading.Event()
        self._threads: List[threading.Thread] = []
        self._accept_thread = threading.Thread(target=self._accept, name="test-rawpeer", daemon=True)
        self._accept_thread.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.conns.append(conn)
            thread = threading.Thread(target=self._run, args=(conn,), name="test-rawpeer-conn", daemon=True)
            self._threads.append(thread)
            thread.start()

    def _run(self, conn: socket.socket) -> None:
        try:
            self.behaviour(conn)
        except OSError:
            pass

    def close(self) -> None:
        """Stop accepting, drop every connection, join the threads."""
        self._stopped.set()
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._accept_thread.join(10)
        for thread in self._threads:
            thread.join(10)


def read_request(conn: socket.socket) -> bytes:
    """Read an HTTP request head from a raw connection."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = conn.recv(4096)
        if not chunk:
            raise OSError("peer closed before the end of the request")
        buf += chunk
    return buf


def accept_handshake(conn: socket.socket) -> bytes:
    """Answer a client's opening handshake with 101 (no extension); return the request."""
    from simplews import handshake

    request = read_request(conn)
    key = next(
        line.split(b":", 1)[1].strip().decode()
        for line in request.split(b"\r\n")
        if line.lower().startswith(b"sec-websocket-key:")
    )
    conn.sendall(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + handshake.accept_key(key).encode() + b"\r\n\r\n"
    )
    return request


@pytest.fixture
def raw_peer() -> Iterator[Callable[..., RawPeer]]:
    """Start raw TCP peers with a given behaviour; all closed after the test."""
    peers: List[RawPeer] = []

    def start(behaviour: Callable[[socket.socket], None], family: int = socket.AF_INET) -> RawPeer:
        peer = RawPeer(behaviour, family)
        peers.append(peer)
        return peer

    yield start
    for peer in peers:
        peer.close()
