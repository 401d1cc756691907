"""Every code block of the README and of docs/ runs, so none can rot.

Each block runs in its own process under ``sandbox.py``, which fences the network:
names of outside servers (``telemetry.example.com``, ``10.0.0.1``) reach local
stand-ins (TLS with a certificate for that name, a CONNECT proxy), fixed ports are
bound as port 0, and any other connection is refused and fails the test.

- A Python block runs as a script and must exit with 0; one that defines ``test_*``
  functions runs under pytest and every test must pass.
- A block that runs forever (``run_forever()``, ``serve_forever()``, ``simplews serve``)
  is stopped the way a person stops it, with Ctrl-C, once its scenario below has
  checked what it does.
- Blocks that name outside servers or run forever have a scenario (keyed by a text
  found in exactly one block); the few that cannot run are in ``NOT_RUN`` with the reason.
"""

from __future__ import annotations

import base64
import errno
import json
import os
import re
import signal
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, List, Tuple

import pytest
from blocks import Block, all_blocks
from harness import ROOT, SANDBOX, Example, Runner, refusals
from redis_server import RedisServer, require_redis

import simplews

pytestmark = pytest.mark.timeout(180)

BLOCKS = [block for block in all_blocks() if block.language in ("python", "bash")]

NOT_RUN: Dict[str, str] = {
    "python3 -m pip install -e . && python3 examples/echo.py": (
        "installs into the running environment; .ci/run runs these very commands, and tests/examples/test_echo.py the example"
    ),
    "python3 -m sphinx -W --keep-going": "installs the docs extra; tests/docs/test_build.py runs this very build",
    "for message in ws:               # ends cleanly": (
        "an overview of the API with placeholders (`on_message=...`) and a loop that ends only when the server closes"
    ),
}

Scenario = Callable[[Block, Runner], None]
SCENARIOS: Dict[str, Scenario] = {}
INTERRUPTED = -signal.SIGINT  # a Python script ended by Ctrl-C (KeyboardInterrupt)


def scenario(marker: str) -> Callable[[Scenario], Scenario]:
    """Register how to run (and stop) the block whose text contains ``marker``."""

    def register(func: Scenario) -> Scenario:
        SCENARIOS[marker] = func
        return func

    return register


def _marker(block: Block) -> str:
    found = [m for m in [*SCENARIOS, *NOT_RUN] if m in block.text]
    assert len(found) <= 1, f"{block.name} matches several scenarios: {found}"
    return found[0] if found else ""


@pytest.mark.parametrize("block", BLOCKS, ids=[b.name for b in BLOCKS])
def test_block_runs(block: Block, runner: Runner) -> None:
    marker = _marker(block)
    if marker in NOT_RUN:
        pytest.skip(f"not run: {NOT_RUN[marker]}")
    if marker:
        SCENARIOS[marker](block, runner)
        return
    assert block.language == "python", f"{block.name}: a shell block needs a scenario in {__name__}"
    forever = [call for call in ("run_forever()", "serve_forever()") if call in block.text]
    assert not forever, f"{block.name} calls {forever[0]}: give it a scenario that checks it and stops it"
    if re.search(r"^def test_", block.text, re.M):
        _run_with_pytest(block, runner)
    else:
        example = runner.script(block.text)
        assert example.finish() == 0, example.report()
        assert not example.refused, example.report()


def test_every_scenario_and_exception_matches_one_block() -> None:
    for marker in [*SCENARIOS, *NOT_RUN]:
        matching = [block.name for block in BLOCKS if marker in block.text]
        assert len(matching) == 1, f"{marker!r} matches {matching}"


def test_the_fence_refuses_outside_addresses(runner: Runner) -> None:
    code = """
import socket
try:
    socket.create_connection(("10.0.0.1", 3128), timeout=5)
except socket.gaierror:
    print("unresolved")
for target in [("10.0.0.1", 3128), ("127.0.0.1", 9)]:
    try:
        socket.socket().connect(target)
    except OSError as exc:
        print("refused", exc.errno)
"""
    example = runner.script(code)
    assert example.finish() == 0, example.report()
    assert example.stdout.splitlines() == ["unresolved", f"refused {errno.ENETUNREACH}", f"refused {errno.ENETUNREACH}"]
    assert example.refused == ["name lookup of 10.0.0.1:3128", "connect to 10.0.0.1:3128", "connect to 127.0.0.1:9"]


def _run_with_pytest(block: Block, runner: Runner) -> None:
    """A block of tests runs under pytest with the simplews plugin; every test passes."""
    tests = len(re.findall(r"^def test_", block.text, re.M))
    path = runner.write(block.text, "test_example.py")
    example = runner.start(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:simplews", "-p", "simplews.testing", str(path)])
    assert example.finish() == 0, example.report()
    assert re.search(rf"^{tests} passed", example.stdout, re.M), example.report()
    assert not example.refused, example.report()


def _get(url: str) -> Tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def _through_proxy(block: Block, runner: Runner, target: str, proxy_name: str, credentials: str) -> Tuple[Any, Any, Example]:
    """Run ``block`` with ``target`` a TLS echo stand-in and ``proxy_name`` a CONNECT proxy wanting ``credentials``."""
    server = runner.standins.tls_echo()
    resolve = {target: ("127.0.0.1", server.server.port)}
    proxy = runner.standins.proxy(resolve, credentials=credentials)
    return server, proxy, runner.script(block.text, resolve={**resolve, proxy_name: ("127.0.0.1", proxy.port)})


def _basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


# --- README ----------------------------------------------------------------------------------


@scenario("ws://127.0.0.1:8765/feed")
def readme_iot_client(block: Block, runner: Runner) -> None:
    example = runner.script(block.text)
    example.output(r"got hello")
    assert example.interrupt() == INTERRUPTED, example.report()
    assert runner.standins.echo.handshakes[0].path == "/feed"


@scenario("process_request=process_request, port=8000")
def readme_page_and_feed(block: Block, runner: Runner) -> None:
    example = runner.script(block.text)
    port = example.port(8000)
    status, content_type, body = _get(f"http://127.0.0.1:{port}/")
    assert (status, content_type) == (200, "text/html") and "new WebSocket" in body
    assert _get(f"http://127.0.0.1:{port}/elsewhere")[0] == 404
    assert _get(f"http://127.0.0.1:{port}/feed")[0] == 426
    with simplews.connect(f"ws://127.0.0.1:{port}/feed") as ws:
        assert "t" in json.loads(ws.recv(timeout=10))
        assert example.interrupt() == 0, example.report()
        with pytest.raises(simplews.ConnectionClosedOK):
            ws.recv(timeout=10)
    assert ws.close_code == 1001


@scenario('simplews.connect("ws://127.0.0.1:8765/", compression=config)')
def readme_compression(block: Block, runner: Runner) -> None:
    example = runner.script(block.text)
    assert example.finish() == 0, example.report()
    offer = runner.standins.echo.wait_for_connections(1)[0].headers["Sec-WebSocket-Extensions"]
    assert offer.startswith("permessage-deflate") and "server_max_window_bits=12" in offer and "client_max_window_bits=12" in offer


@scenario("telemetry.example.com/v1/feed?site=north")
def readme_real_world_client(block: Block, runner: Runner) -> None:
    server, proxy, example = _through_proxy(block, runner, "telemetry.example.com:443", "10.0.0.1:3128", "proxyuser:proxypass")
    example.output(r"(?m)^hello$")
    assert example.interrupt() == INTERRUPTED, example.report()
    request = server.handshakes[0]
    assert request.path == "/v1/feed?site=north" and request.headers["Authorization"] == _basic("device-7:s3cret")
    assert request.headers["X-Device-Id"] == "7" and request.subprotocol == "telemetry.v1"
    assert proxy.requests[0] == ("telemetry.example.com:443", _basic("proxyuser:proxypass"))
    assert not example.refused, example.report()


@scenario('RedisBroadcast("redis://127.0.0.1:6379/0", channel_prefix="chat")')
def readme_several_processes(block: Block, runner: Runner) -> None:
    """The block as two processes sharing one Redis (ours, where the block says 127.0.0.1:6379)."""
    folder = runner.tmp / "redis"
    folder.mkdir()
    redis = RedisServer(require_redis(), folder)
    redis.start()
    try:
        resolve = {"127.0.0.1:6379": ("127.0.0.1", redis.port)}
        one, two = runner.script(block.text, resolve=resolve), runner.script(block.text, resolve=resolve)
        with simplews.connect(f"ws://127.0.0.1:{two.port(8001)}/") as there:
            there.send("/join lobby")
            there.send("there")  # back once its process counts it among its clients, in the lobby
            assert there.recv(timeout=30) == "there"
            with simplews.connect(f"ws://127.0.0.1:{one.port(8001)}/") as here:
                here.send("/to lobby for the lobby")  # not for here: in no room
                assert there.recv(timeout=30) == "for the lobby"
                here.send("from one process to the other")
                first = here.recv(timeout=30)  # "there" may still have been on its way to this process
                mine = here.recv(timeout=30) if first == "there" else first
                assert mine == there.recv(timeout=30) == "from one process to the other"
            assert one.interrupt() == 0 and two.interrupt() == 0, one.report() + two.report()
        assert not one.refused and not two.refused, one.report() + two.report()
    finally:
        redis.close()


@scenario("simplews serve --broadcast --port 0")
def readme_command_line(block: Block, runner: Runner) -> None:
    checks: List[Tuple[str, Callable[[str, Runner], None]]] = [
        (r"^simplews serve +#", _cli_echo_server),
        (r"^simplews serve --broadcast --port 0", _cli_broadcast_server),
        (r"^simplews serve --host 0\.0\.0\.0 --certfile cert\.pem --keyfile key\.pem", _cli_tls_server),
        (r"^simplews connect ws://127\.0\.0\.1:8765/ -H", _cli_connect_with_header),
        (r"^echo .* \| simplews connect wss://example\.com/feed --wait 2", _cli_pipe_to_wss),
        (r"^echo 'de ad be ef' \| simplews connect ws://127\.0\.0\.1:8765/ --binary", _cli_binary),
        (r"^simplews connect ws://127\.0\.0\.1:8765/ --file firmware\.bin < /dev/null", _cli_file),
        (r"^simplews connect wss://example\.com/feed --json --timings", _cli_json_timings),
        (r"^simplews connect ws://127\.0\.0\.1:8765/ --ping 5", _cli_ping),
        (r"^simplews connect ws://127\.0\.0\.1:8765/ --raw", _cli_raw),
        (r"^simplews --version", _cli_version),
    ]
    lines = [line for line in block.text.splitlines() if line.strip()]
    assert len(lines) == len(checks), lines
    for line, (pattern, check) in zip(lines, checks):
        assert re.match(pattern, line), (pattern, line)
        check(line, runner)


def _cli_echo_server(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line)
    port = example.port(8765)
    with simplews.connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    assert example.interrupt() == 0, example.report()
    assert "listening on ws://127.0.0.1:" in example.stdout


def _cli_broadcast_server(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line)
    url = example.output(r"listening on (ws://\S+)").group(1)
    with simplews.connect(url) as first:
        first.send("first here")  # relayed to everyone once the server counts us in
        assert first.recv(timeout=10) == "first here"
        with simplews.connect(url) as second:
            second.send("second here")
            assert second.recv(timeout=10) == "second here"
            assert first.recv(timeout=10) == "second here"
    assert example.interrupt() == 0, example.report()


def _cli_tls_server(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line)
    port = example.port(8765)
    with simplews.connect(f"wss://localhost:{port}/", ssl_context=runner.standins.client_context()) as ws:
        ws.send("secure")
        assert ws.recv(timeout=10) == "secure"
    assert example.interrupt() == 0, example.report()
    assert "listening on wss://" in example.stdout


def _cli_connect_with_header(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line, stdin="")
    assert example.finish() == 0, example.report()
    request = runner.standins.echo.handshakes[-1]
    assert request.headers["Authorization"] == "Bearer t" and request.subprotocol == "chat"


def _cli_pipe_to_wss(line: str, runner: Runner) -> None:
    server = runner.standins.tls_echo()
    example = runner.start([], shell=line, resolve={"example.com:443": ("127.0.0.1", server.server.port)})
    assert example.finish() == 0, example.report()
    assert example.stdout.splitlines() == ['{"cmd": "status"}']
    assert server.handshakes[0].path == "/feed" and not example.refused


def _cli_binary(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line)
    assert example.finish() == 0, example.report()
    assert b"\xde\xad\xbe\xef" in runner.standins.echo.messages
    assert example.stdout.splitlines() == ["[binary 4 bytes] deadbeef"], example.report()  # the echo, as hex


def _cli_file(line: str, runner: Runner) -> None:
    example = runner.start([], shell="printf 'firmware image' > firmware.bin && " + line)
    assert example.finish() == 0, example.report()
    assert b"firmware image" in runner.standins.echo.messages


def _cli_json_timings(line: str, runner: Runner) -> None:
    server = runner.standins.tls_echo()
    example = runner.start([], shell=line, stdin='{"indented": "JSON"}\n',
                           resolve={"example.com:443": ("127.0.0.1", server.server.port)})  # fmt: skip
    assert example.finish() == 0, example.report()
    assert re.search(r'(?m)^\[ *\d+\.\d{3}\] \{\n +"indented": "JSON"\n\}', example.stdout), example.report()


def _cli_ping(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line.split("#")[0], stdin="ping me\n")
    assert example.finish() == 0, example.report()
    assert example.stdout.splitlines() == ["ping me"], example.report()


def _cli_raw(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line.split("#")[0], stdin="hello\n")
    assert example.finish() == 0, example.report()
    shown = example.stdout + example.stderr
    assert "> text 5 hello" in shown and "< close 1000" in shown, example.report()


def _cli_version(line: str, runner: Runner) -> None:
    example = runner.start([], shell=line)
    assert example.finish() == 0 and example.stdout.strip() == f"simplews {simplews.__version__}", example.report()


# --- docs/ -----------------------------------------------------------------------------------


@scenario('"wss://telemetry.example.com/v1/feed"')
def sensor_script(block: Block, runner: Runner) -> None:
    server = runner.standins.tls_echo()
    example = runner.script(block.text, resolve={"telemetry.example.com:443": ("127.0.0.1", server.server.port)})
    readings = [json.loads(m) for m in server.wait_for_messages(2, timeout=30)]
    assert all(set(reading) == {"t", "celsius"} and 20 <= reading["celsius"] <= 21 for reading in readings)
    example.output(r"server says \{")
    assert example.interrupt() == INTERRUPTED, example.report()
    assert server.wait_for_closes(1) == [(1000, "")]  # the finally: stopped the client


@scenario("max_retries=3")
def reconnect_gives_up(block: Block, runner: Runner) -> None:
    example = runner.script(block.text)  # run_forever() returns by itself here
    assert example.finish() == 0, example.report()


@scenario("proxy.internal:3128")
def proxy_example(block: Block, runner: Runner) -> None:
    server, proxy, example = _through_proxy(block, runner, "feed.example.com:443", "proxy.internal:3128", "device-7:s3cret")
    assert example.finish() == 0, example.report()
    assert example.stdout.splitlines() == ["hello through the proxy"]
    assert proxy.requests == [("feed.example.com:443", _basic("device-7:s3cret"))]


@scenario("class Room:")
def deployment_service(block: Block, runner: Runner) -> None:
    example = runner.script(block.text)
    port = example.port(8765)
    assert _get(f"http://127.0.0.1:{port}/healthz")[::2] == (200, "ok\n")
    with simplews.connect(f"ws://127.0.0.1:{port}/?name=ada") as ws:
        assert ws.recv(timeout=10) == "welcome ada"
        ws.send("hi")
        assert ws.recv(timeout=10) == "ada: hi"
    example.until("the close logged", lambda: "ada left (1000)" in example.stderr)
    assert example.interrupt() == 0, example.report()
    assert "server shut down" in example.stderr


@scenario("display_id=True")
def notebook_chart(block: Block, runner: Runner) -> None:
    """Run in a real kernel, with the fence installed by a first cell: one chart, updated in place."""
    nbformat = pytest.importorskip("nbformat")
    from notebooks import RecordingClient, check_updated_in_place

    config = runner.configure()
    fence = (
        f"import json, sys\nsys.path.insert(0, {str(SANDBOX.parent)!r})\nimport sandbox\n"
        f"sandbox.Fence(json.loads(open({str(config)!r}).read())).install()"
    )
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(fence), nbformat.v4.new_code_cell(block.text)])
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
        patch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
        client = RecordingClient(notebook, timeout=90, kernel_name="python3", resources={"metadata": {"path": str(config.parent)}})
        client.execute()
    errors = ["\n".join(out.traceback) for cell in notebook.cells for out in cell.outputs if out.output_type == "error"]
    assert not errors, errors[0]
    check_updated_in_place(client, 1)
    assert not refusals(config.parent / "events.jsonl")
