"""Echo server and client in one script: start a server, talk to it, shut down.

Run: python examples/echo.py
"""

from __future__ import annotations

import simplews


def on_message(ws: simplews.Connection, message: object) -> None:
    """Send every message straight back."""
    ws.send(message)  # type: ignore[arg-type]


def main() -> None:
    with simplews.serve(on_message=on_message, port=0) as server:
        print(f"echo server listening on {server.url}")
        with simplews.connect(server.url) as ws:
            for text in ["hello", "héllo wörld", "bye"]:
                ws.send(text)
                print(f"sent {text!r}, got back {ws.recv(timeout=5)!r}")
            ws.send(b"\x00\x01\x02")
            print(f"binary round trip: {ws.recv(timeout=5)!r}")
    print("closed cleanly")


if __name__ == "__main__":
    main()
