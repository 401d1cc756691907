"""The README's real-world client example runs: wss, an authenticating proxy, reconnect."""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import Any, List

from helpers import wait_for

import simplews

README = Path(__file__).resolve().parents[2] / "README.md"


def _example() -> str:
    text = README.read_text()
    section = text[text.index("## Client in the real world") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_readme_iot_example_runs_against_local_servers(
    proxy_factory: Any, server_tls: ssl.SSLContext, client_tls: ssl.SSLContext
) -> None:
    proxy = proxy_factory(auth="proxyuser proxypass")
    seen: List[Any] = []

    def on_open(ws: simplews.Connection) -> None:
        seen.append((ws.path, ws.headers.get("Authorization"), ws.headers.get("X-Device-Id"), ws.subprotocol))

    def on_message(ws: simplews.Connection, message: Any) -> None:
        ws.send(f"ack {message}")
        if len(seen) == 1:
            ws.close(1012, "server restart")  # the client must come back

    server = simplews.serve(
        on_open=on_open, on_message=on_message, port=0, ssl_context=server_tls, subprotocols=["telemetry.v1"]
    )
    port = server.port
    code = _example()
    code = code.replace("telemetry.example.com", f"localhost:{port}")
    code = code.replace("10.0.0.1:3128", f"127.0.0.1:{proxy.port}")
    code = code.replace("open_timeout=10,", "open_timeout=10, ssl_context=_ssl_context,")
    code = code.replace("client.run_forever()", "client.start()")
    assert code.count(f"localhost:{port}") == 1 and "_ssl_context" in code
    printed: List[Any] = []
    namespace = {"print": lambda *args: printed.append(args), "_ssl_context": client_tls}
    with server:
        exec(compile(code, str(README), "exec"), namespace)
        client = namespace["client"]
        try:
            assert wait_for(lambda: printed.count(("ack hello",)) >= 2, timeout=20), printed
        finally:
            client.stop(timeout=10)
    assert ("closed", 1012, "server restart") in printed
    assert seen[0] == ("/v1/feed?site=north", "Basic ZGV2aWNlLTc6czNjcmV0", "7", "telemetry.v1")
    assert len(seen) >= 2 and proxy.log_text().count(f"CONNECT localhost:{port} ") >= 2
