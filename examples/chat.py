"""A chat room: the web page and its WebSocket on one port, every message relayed to everyone.

Run: python examples/chat.py [--host 127.0.0.1] [--port 8000]
then open the printed http:// address in several browser tabs.

GET / answers the page (process_request); /ws upgrades to a WebSocket; every
text message a client sends is broadcast to all connected clients, the
sender included, so each page shows the room's messages in the same order.
"""

from __future__ import annotations

import argparse
from typing import Optional, Tuple

import simplews

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>simplews chat</title>
<style>
  body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em; margin: 0; list-style: none; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>simplews chat</h1>
<p id="status">connecting</p>
<ul id="log"></ul>
<form id="form"><input id="text" autocomplete="off" autofocus> <button>Send</button></form>
<script>
const log = document.getElementById("log");
const status = document.getElementById("status");
const input = document.getElementById("text");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => { status.textContent = "connected"; };
ws.onclose = (event) => { status.textContent = "disconnected (" + event.code + ")"; };
ws.onmessage = (event) => {
  const item = document.createElement("li");
  item.textContent = event.data;          // text, never HTML: no injection
  log.appendChild(item);
  log.scrollTop = log.scrollHeight;
};
document.getElementById("form").onsubmit = (event) => {
  event.preventDefault();
  if (input.value && ws.readyState === WebSocket.OPEN) { ws.send(input.value); input.value = ""; }
};
</script>
</body>
</html>
"""

#: the longest chat line accepted; a longer one closes that client's connection with 1009
MAX_MESSAGE = 4096


def make_server(host: str = "127.0.0.1", port: int = 8000, broadcast: Optional[simplews.BroadcastBus] = None) -> simplews.Server:
    """A chat server (not started): the page at ``/``, the room at ``/ws``.

    ``broadcast``, when given, carries every line to the other processes'
    clients too (examples/cluster_chat.py passes a RedisBroadcast).
    """
    server: Optional[simplews.Server] = None

    def process_request(request: simplews.Request) -> Optional[Tuple[int, list, str]]:
        """Serve the page for plain HTTP; let WebSocket upgrades to /ws through."""
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return None if request.path_only == "/ws" else (404, [], "no WebSocket here: use /ws\n")
        if request.path_only == "/":
            return 200, [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")], PAGE
        return 404, [("Content-Type", "text/plain")], "not found\n"

    def on_message(ws: simplews.Connection, message: object) -> None:
        """Relay text to everyone; binary has no place in this room."""
        if isinstance(message, str) and server is not None:
            server.broadcast(message)

    server = simplews.Server(
        on_message=on_message, process_request=process_request, host=host, port=port, max_message_size=MAX_MESSAGE,
        broadcast=broadcast,
    )
    return server


def http_url(server: simplews.Server) -> str:
    """The address of the page, e.g. ``http://127.0.0.1:8000/``."""
    return "http" + server.url[2:]


def main(argv: Optional[list] = None) -> None:
    """Run the chat server until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    args = parser.parse_args(argv)
    server = make_server(args.host, args.port)
    server.start()
    print(f"chat page on {http_url(server)} (WebSocket at {server.url}ws); Ctrl-C stops", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
