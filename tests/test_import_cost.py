"""``import simplews`` stays cheap: heavy modules load on first use, and no thread starts."""

from __future__ import annotations

import subprocess
import sys

import pytest

import simplews


def run_python(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize(
    "module",
    ["simplews.frames", "simplews.handshake", "simplews.transport", "simplews.connection", "simplews.client", "simplews.server"],
)
def test_modules_leave_ssl_and_hash_imports_for_first_use(module: str) -> None:
    code = f"import sys, {module}; print(sorted(m for m in ('ssl', 'secrets', 'hashlib') if m in sys.modules))"
    assert run_python(code) == "[]"


def test_import_starts_no_thread() -> None:
    code = "import threading, simplews; simplews.connect; simplews.serve; print(threading.active_count())"
    assert run_python(code) == "1"


def test_frames_builds_its_translate_tables_on_first_use() -> None:
    code = (
        "from simplews import frames; n = len(frames._XOR_TABLES); "
        "frames._py_apply_mask(bytes(100), b'abcd'); print(n, len(frames._XOR_TABLES))"
    )
    assert run_python(code) == "0 256"


def test_a_plain_tcp_connection_never_imports_ssl() -> None:
    code = (
        "import sys, simplews\n"
        "with simplews.serve(on_message=lambda ws, m: ws.send(m), port=0, compression=None) as server:\n"
        "    with simplews.connect(server.url, compression=None) as ws:\n"
        "        ws.send('x'); assert ws.recv(timeout=10) == 'x'\n"
        "print('ssl' in sys.modules)"
    )
    assert run_python(code) == "False"


def test_a_tls_socket_given_as_sock_is_refused() -> None:
    import socket
    import ssl

    tls = ssl.create_default_context().wrap_socket(socket.socket(), do_handshake_on_connect=False, server_hostname="localhost")
    try:
        with pytest.raises(TypeError, match="plain connected socket"):
            simplews.connect("wss://localhost/", sock=tls)
    finally:
        tls.close()
