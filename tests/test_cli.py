"""The command line (python -m simplews), run as a subprocess over real sockets."""

from __future__ import annotations

import io
import json
import os
import queue
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Iterator, List, Optional

import pytest

import simplews
from simplews.testing import ClientFactory, RecordingServer, ServerFactory

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict:
    """The environment for a subprocess: our checkout first on the path, no proxy settings."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def simplews_cli(*args: str, **kwargs: Any) -> subprocess.Popen:
    """Start ``python -m simplews ARGS`` with pipes for stdin, stdout and stderr."""
    return subprocess.Popen(
        [sys.executable, "-m", "simplews", *args],
        stdin=kwargs.pop("stdin", subprocess.PIPE),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        **kwargs,
    )


def run_cli(*args: str, input: Optional[str] = None) -> subprocess.CompletedProcess:
    """Run ``python -m simplews ARGS`` to completion (bounded)."""
    return subprocess.run(
        [sys.executable, "-m", "simplews", *args], input=input, capture_output=True, text=True, env=_env(), timeout=60
    )


class Lines:
    """Reads a pipe line by line on a helper thread, so tests can wait with a bound."""

    def __init__(self, pipe: Any) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(pipe,), daemon=True)
        self._thread.start()

    def _pump(self, pipe: Any) -> None:
        try:
            for line in pipe:
                self._queue.put(line.rstrip("\n"))
        except (ValueError, OSError):  # the test closed the pipe after the process ended
            pass
        self._queue.put(None)

    def next(self, timeout: float = 30) -> Optional[str]:
        """The next line (``None`` at end of stream); fails the test after ``timeout``."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"no output line within {timeout} s")

    def rest(self) -> List[str]:
        """Every remaining line, once the stream has ended."""
        self._thread.join(30)
        lines = []
        while True:
            line = self._queue.get_nowait()
            if line is None:
                return lines
            lines.append(line)


@pytest.fixture
def cli_server(request: Any) -> Iterator[Any]:
    """Start ``simplews serve --port 0 EXTRA``; yields (url, process); interrupts it after."""
    procs: List[subprocess.Popen] = []

    def start(*extra: str) -> Any:
        proc = simplews_cli("serve", "--port", "0", *extra, stdin=subprocess.DEVNULL)
        procs.append(proc)
        first = Lines(proc.stdout).next()
        assert first is not None and " listening on " in first, proc.stderr.read() if proc.poll() is not None else first
        return first.rsplit(" ", 1)[1], proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        proc.stdout.close()
        proc.stderr.close()


# --- general -----------------------------------------------------------------------------------


def test_version() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"simplews {simplews.__version__}"


def test_console_script_and_plugin_are_declared() -> None:
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"] == {"simplews": "simplews.cli:main"}
    assert project["entry-points"]["pytest11"] == {"simplews": "simplews.testing"}



def test_main_is_callable_in_process(ws_recording_server: RecordingServer, monkeypatch: Any, capsys: Any) -> None:
    from simplews.cli import main

    monkeypatch.setattr(sys, "stdin", io.StringIO("in process\n"))
    assert main(["connect", ws_recording_server.url]) == 0
    assert ws_recording_server.wait_for_messages(1) == ["in process"]
    assert "disconnected (1000)" in capsys.readouterr().err


def test_no_command_is_a_usage_error() -> None:
    result = run_cli()
    assert result.returncode == 2 and "Traceback" not in result.stderr


# --- serve ---------------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_serve_echoes_and_stops_cleanly_on_sigint(cli_server: Any, ws_client: ClientFactory) -> None:
    url, proc = cli_server()
    assert url.startswith("ws://127.0.0.1:")
    ws = ws_client(url)
    for message in ["hello", "héllo ☃", b"\x00\xff"]:
        ws.send(message)
        assert ws.recv(timeout=10) == message
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0
    with pytest.raises(simplews.ConnectionClosed):
        ws.recv(timeout=10)
    assert ws.close_code == 1001
    assert "Traceback" not in proc.stderr.read()


@pytest.mark.timeout(60)
def test_serve_stops_cleanly_on_sigterm(cli_server: Any) -> None:
    _, proc = cli_server()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, proc.stderr.read()


@pytest.mark.timeout(60)
def test_serve_broadcast_relays_every_message_to_all_clients(cli_server: Any, ws_client: ClientFactory) -> None:
    url, _ = cli_server("--broadcast")
    alice, bob = ws_client(url), ws_client(url)
    # both are connected once each has seen a message relayed after its handshake
    alice.send("sync")
    assert alice.recv(timeout=10) == "sync"
    bob.send("hello from bob")
    assert bob.recv(timeout=10) in ("sync", "hello from bob")
    assert alice.recv(timeout=10) == "hello from bob"


@pytest.mark.timeout(60)
def test_serve_tls_and_connect_with_cafile(cli_server: Any, tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    url, _ = cli_server("--certfile", str(tmp_path / "server.pem"))
    assert url.startswith("wss://127.0.0.1:")
    context = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
    with simplews.connect(url, ssl_context=context) as ws:
        ws.send("secure")
        assert ws.recv(timeout=10) == "secure"
    assert _round_trip(url, "over tls", "--cafile", str(tmp_path / "ca.pem")) == "over tls"
    assert _round_trip(url, "unverified", "--insecure") == "unverified"
    result = run_cli("connect", url, input="x\n")  # certifi does not know our test CA
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and "certificate" in result.stderr.lower()


def _round_trip(url: str, line: str, *options: str) -> Optional[str]:
    """Type one line into ``simplews connect``, return the line it prints back, then Ctrl-D."""
    client = simplews_cli("connect", url, *options)
    out = Lines(client.stdout)
    client.stdin.write(line + "\n")
    client.stdin.flush()
    reply = out.next()
    client.stdin.close()
    assert client.wait(30) == 0, client.stderr.read()
    client.stdout.close()
    client.stderr.close()
    return reply


def test_serve_on_a_busy_port_is_a_one_line_error(ws_server: ServerFactory) -> None:
    busy = ws_server()
    result = run_cli("serve", "--port", str(busy.port))
    assert result.returncode == 1
    assert result.stderr.startswith("simplews: error: cannot listen on") and result.stderr.count("\n") == 1


def test_serve_bad_certificate_is_a_usage_error(tmp_path: Path) -> None:
    result = run_cli("serve", "--port", "0", "--certfile", str(tmp_path / "missing.pem"))
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


# --- connect -----------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_connect_interactive_session(ws_server: ServerFactory) -> None:
    server = ws_server(on_message=lambda ws, m: ws.send(f"echo: {m}"))
    proc = simplews_cli("connect", server.url)
    out = Lines(proc.stdout)
    for line in ["hello", "wörld"]:
        proc.stdin.write(line + "\n")
        proc.stdin.flush()
        assert out.next() == f"echo: {line}"
    proc.stdin.close()  # Ctrl-D
    assert proc.wait(30) == 0
    assert out.rest() == []
    err = proc.stderr.read()
    assert f"connected to {server.url}" in err and "disconnected (1000)" in err
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.timeout(60)
def test_connect_sends_piped_stdin_with_headers_and_closes_at_eof() -> None:
    with RecordingServer(subprotocols=["chat"]) as server:
        result = run_cli(
            "connect", server.url, "--header", "X-Token: secret", "-H", "X-Other:two", "--subprotocol", "chat",
            input="one\ntwo\n\nthree",
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert server.wait_for_messages(4) == ["one", "two", "", "three"]
        assert server.wait_for_closes(1) == [(1000, "")]
        request = server.handshakes[0]
        assert request.headers["X-Token"] == "secret" and request.headers["X-Other"] == "two"
        assert request.subprotocol == "chat" and "(subprotocol chat)" in result.stderr


@pytest.mark.timeout(60)
def test_connect_prints_what_the_server_sends_until_it_closes(ws_server: ServerFactory) -> None:
    def greet(ws: simplews.Connection) -> None:
        ws.send("welcome")
        ws.send(b"\x01\x02")
        ws.close(1000, "bye")

    server = ws_server(on_open=greet)
    proc = simplews_cli("connect", server.url)  # stdin stays open: the server ends the session
    assert proc.wait(30) == 0
    assert proc.stdout.read().splitlines() == ["welcome", "[binary 2 bytes] 0102"]
    assert "disconnected (1000 bye)" in proc.stderr.read()
    proc.stdin.close()
    proc.stdout.close()
    proc.stderr.close()


@pytest.mark.timeout(60)
def test_connect_wait_prints_replies_to_piped_lines(ws_server: ServerFactory) -> None:
    def echo_twice_then_close(ws: simplews.Connection) -> None:
        for _ in range(2):
            ws.send(ws.recv(timeout=30))
        ws.close(1000)

    server = ws_server(echo_twice_then_close)
    result = run_cli("connect", server.url, "--wait", "30", input="a\nb\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["a", "b"]


def test_connect_abnormal_close_exits_1(ws_server: ServerFactory) -> None:
    server = ws_server(on_open=lambda ws: ws.close(4000, "go away"))
    result = run_cli("connect", server.url, input="")
    assert result.returncode == 1 and "disconnected (4000 go away)" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["connect", "http://127.0.0.1/"], "is not a WebSocket URL"),
        (["connect", "ws://"], "has no host"),
        (["connect", "ws://127.0.0.1:99999/"], "not a valid URL"),
        (["connect", "ws://127.0.0.1/", "--header", "no colon"], "is not 'Name: value'"),
        (["serve", "--port", "70000"], "is not between 0 and 65535"),
        (["connect", "ws://127.0.0.1/", "--timeout", "soon"], "invalid float value"),
        (["connect", "ws://127.0.0.1/", "--proxy", "gopher://127.0.0.1:70"], "unsupported proxy gopher://"),
        (["connect", "ws://127.0.0.1/", "--ping", "-1"], "--ping -1 is negative"),
    ],
)
def test_usage_mistakes_are_one_line_errors_with_exit_2(args: List[str], message: str) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("simplews")


def test_connect_refused_is_a_one_line_error_with_exit_1() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_cli("connect", f"ws://127.0.0.1:{port}/", input="x\n")
    assert result.returncode == 1
    assert result.stderr == f"simplews: error: cannot connect to ws://127.0.0.1:{port}/: connection refused by 127.0.0.1:{port}\n"


@pytest.mark.timeout(60)
def test_connect_status_lines_mask_credentials_and_query_values(ws_recording_server: RecordingServer) -> None:
    secret_url = ws_recording_server.url.replace("ws://", "ws://u:cli-pw-31@") + "feed?token=cli-tok-31&room=1"
    result = run_cli("connect", secret_url, input="")
    assert result.returncode == 0
    shown = ws_recording_server.url.replace("ws://", "ws://***@") + "feed?token=***&room=***"
    assert result.stderr.splitlines()[0] == f"connected to {shown}"
    assert ws_recording_server.wait_for_connections(1)[0].path == "/feed?token=cli-tok-31&room=1"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    failed = run_cli("connect", f"ws://u:cli-pw-31@127.0.0.1:{port}/?token=cli-tok-31", input="")
    assert failed.returncode == 1
    assert failed.stderr.startswith(f"simplews: error: cannot connect to ws://***@127.0.0.1:{port}/?token=***: ")
    for text in (result.stdout, result.stderr, failed.stdout, failed.stderr):
        assert "cli-pw-31" not in text and "cli-tok-31" not in text


# --- proxy -------------------------------------------------------------------------------------


class ConnectProxy:
    """A minimal HTTP CONNECT proxy for one tunnel; records the CONNECT target."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.targets: List[str] = []
        self.thread = threading.Thread(target=self._serve_one, daemon=True)
        self.thread.start()

    def _serve_one(self) -> None:
        client, _ = self.listener.accept()
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = client.recv(4096)
                if not chunk:
                    return
                head += chunk
            target = head.split(b"\r\n", 1)[0].split()[1].decode()
            self.targets.append(target)
            host, port = target.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=30) as upstream:
                client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self._pump(client, upstream)

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        peers = {a: b, b: a}
        while True:
            ready, _, _ = select.select(list(peers), [], [], 30)
            if not ready:
                return
            for sock in ready:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)

    def close(self) -> None:
        self.thread.join(30)
        self.listener.close()


@pytest.mark.timeout(60)
def test_connect_through_a_proxy(ws_server: ServerFactory) -> None:
    server = ws_server(on_message=lambda ws, m: ws.send(m.upper()))
    proxy = ConnectProxy()
    try:
        proc = simplews_cli("connect", server.url, "--proxy", f"http://127.0.0.1:{proxy.port}")
        out = Lines(proc.stdout)
        proc.stdin.write("via proxy\n")
        proc.stdin.flush()
        assert out.next() == "VIA PROXY"
        proc.stdin.close()
        assert proc.wait(30) == 0
        proc.stdout.close()
        proc.stderr.close()
    finally:
        proxy.close()
    assert proxy.targets == [f"127.0.0.1:{server.port}"]


@pytest.mark.timeout(300)
def test_piped_lines_are_echoed_before_the_close_every_time(cli_server: Any) -> None:
    """End of input closes at once; the echoes cross our close frame and must still be printed."""
    url, _ = cli_server()
    for run in range(20):
        result = run_cli("connect", url, input="hello\nworld\n")
        assert (result.returncode, result.stdout) == (0, "hello\nworld\n"), (run, result.stderr)


# --- connect: wsdump's options -------------------------------------------------------------


@pytest.mark.timeout(60)
def test_connect_binary_sends_hex_lines_as_binary(ws_recording_server: RecordingServer) -> None:
    result = run_cli("connect", ws_recording_server.url, "--binary", input="00ff10\nDE AD be ef\nnot hex\n\n")
    assert result.returncode == 0, result.stderr
    assert ws_recording_server.wait_for_messages(3) == [b"\x00\xff\x10", b"\xde\xad\xbe\xef", b""]
    assert "stdin line 3 is not hex; not sent: 'not hex'" in result.stderr


@pytest.mark.timeout(60)
def test_connect_file_sends_the_file_as_one_binary_message(ws_recording_server: RecordingServer, tmp_path: Path) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(256)) * 300)  # 76800 bytes: several frames on the wire, one message
    result = run_cli("connect", ws_recording_server.url, "--file", str(blob), input="and a line\n")
    assert result.returncode == 0, result.stderr
    assert ws_recording_server.wait_for_messages(2) == [blob.read_bytes(), "and a line"]
    missing = run_cli("connect", ws_recording_server.url, "--file", str(tmp_path / "missing.bin"), input="")
    assert missing.returncode == 2 and "cannot read --file" in missing.stderr and "Traceback" not in missing.stderr
    assert len(ws_recording_server.wait_for_connections(1)) == 1  # the usage error came before connecting


@pytest.mark.timeout(60)
@pytest.mark.parametrize("interval", [None, "0.05"])
def test_connect_ping_prints_the_round_trip_time(cli_server: Any, interval: Optional[str]) -> None:
    url, _ = cli_server()
    proc = simplews_cli("connect", url, "--ping", *([interval] if interval else []))  # stdin stays open meanwhile
    err = Lines(proc.stderr)
    assert err.next() == f"connected to {url}"
    for _ in range(3 if interval else 1):
        line = err.next()
        assert line is not None and re.fullmatch(r"pong after \d+\.\d{3} ms", line), line
    proc.stdin.close()
    assert proc.wait(30) == 0
    rest = err.rest()
    assert rest[-1] == "disconnected (1000)"
    if not interval:
        assert rest == ["disconnected (1000)"]  # one ping only
    proc.stdout.close()


@pytest.mark.timeout(60)
def test_connect_timings_stamp_each_message(cli_server: Any) -> None:
    url, _ = cli_server()
    result = run_cli("connect", url, "--timings", input="one\ntwo\n")
    assert result.returncode == 0, result.stderr
    stamps = [re.fullmatch(r"\[ *(\d+\.\d{3})\] (.*)", line) for line in result.stdout.splitlines()]
    assert all(stamps) and [m.group(2) for m in stamps if m] == ["one", "two"], result.stdout
    times = [float(m.group(1)) for m in stamps if m]
    assert times == sorted(times)
    assert re.match(r"\[ *\d+\.\d{3}\] disconnected \(1000\)", result.stderr.splitlines()[-1])


@pytest.mark.timeout(60)
def test_connect_json_pretty_prints_json_and_leaves_the_rest(ws_server: ServerFactory) -> None:
    def send_some(ws: simplews.Connection) -> None:
        ws.send('{"sensor": "t1", "values": [1, 2], "unit": "°C"}')
        ws.send("not json {")
        ws.send(b"\x01")
        ws.close(1000)

    server = ws_server(on_open=send_some)
    result = run_cli("connect", server.url, "--json", input="")
    assert result.returncode == 0, result.stderr
    pretty = json.dumps({"sensor": "t1", "values": [1, 2], "unit": "°C"}, indent=2, ensure_ascii=False)
    assert result.stdout.splitlines() == [*pretty.splitlines(), "not json {", "[binary 1 bytes] 01"]


@pytest.mark.timeout(60)
def test_connect_raw_shows_messages_pings_pongs_and_close_frames(cli_server: Any) -> None:
    url, _ = cli_server()
    result = run_cli("connect", url, "--raw", "--binary", input="6869\n")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 6 and lines[0] == "> binary 2 6869" and lines[-1] == "< close 1000", lines
    # after the input, a ping whose pong shows the server read it all; then our close
    ping = next((m for m in map(re.compile(r"> ping 4 ([0-9a-f]{8})").fullmatch, lines) if m), None)
    assert ping is not None, lines
    pong = re.compile(rf"< pong 4 {ping.group(1)} \(\d+\.\d{{3}} ms\)")
    pongs = [i for i, line in enumerate(lines) if pong.fullmatch(line)]
    assert len(pongs) == 1 and lines.index(ping.group(0)) < pongs[0] < lines.index("> close 1000"), lines
    # the echo comes back at any point, even after our close frame went out: it is printed all the same
    assert "< binary 2 6869" in lines[1:5], lines
