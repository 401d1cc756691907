"""Mistakes ``mypy --strict`` must catch in a user's code; ``# E: code`` marks each expected error.

Checked by tests/test_typing.py, never run.
"""

from __future__ import annotations

import simplews


def on_error(ws: simplews.Connection, exc: BaseException) -> None:  # a Client may pass None
    ws.close()


def main() -> None:
    ws = simplews.connect("ws://127.0.0.1:8765/", options=simplews.ClientOptions(open_timeout="10"))  # E: arg-type
    ws.send(42)  # E: arg-type
    text: str = ws.recv(timeout=5)  # E: assignment
    ws.close(reason=1000)  # E: arg-type
    simplews.Client("ws://127.0.0.1:8765/", on_error=on_error)  # E: arg-type
    server = simplews.Server(options=simplews.ServerOptions(port="8765"))  # E: arg-type
    server.broadcast({"not": "a message"})  # E: arg-type
    server.broadcast("hello", room=42)  # E: arg-type
    ws.join(b"lobby")  # E: arg-type
    print(text, server.urls)  # E: attr-defined
    simplews.basic_auth("chat", check_credentials=on_error)  # E: arg-type
    simplews.Router().route(42, on_error)  # E: call-overload
