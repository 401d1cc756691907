"""One simplews server process of a cluster, for the tests: ``python node.py --redis URL [--port 0]``.

A ``Server(..., broadcast=RedisBroadcast(...))``: every message a client sends
is broadcast to every server's clients. Text commands: ``whoami`` answers
``{"pid", "port"}``; ``join R`` / ``leave R`` answer the connection's rooms
(a JSON list) once done; ``@R MESSAGE`` broadcasts MESSAGE to room R of
every server; ``stats`` answers ``{"bus": RedisBroadcast counters, "server":
the server's broadcast_stats, "connected"}``. ``GET /healthz`` answers 200
for a load balancer's health checks. Prints ``serving ws://HOST:PORT/ pid N``
once it accepts, runs until SIGINT/SIGTERM, then shuts down (which stops the
broadcast) and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
from typing import Any, List, Optional

import simplews


def main(argv: Optional[List[str]] = None) -> None:
    """Run one node until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", required=True)
    parser.add_argument("--prefix", default="simplews")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="node %(process)d: %(levelname)s %(message)s")

    broadcast = simplews.RedisBroadcast(
        args.redis, channel_prefix=args.prefix, timeout=args.timeout, reconnect_delay=0.05, reconnect_max_delay=0.5,
        health_check_interval=0.5,
    )  # fmt: skip

    def on_message(ws: simplews.Connection, message: Any) -> None:
        command, _, rest = message.partition(" ") if isinstance(message, str) else ("", "", "")
        if message == "whoami":
            ws.send(json.dumps({"pid": os.getpid(), "port": server.port}))
        elif message == "stats":
            counters = {"bus": dataclasses.asdict(broadcast.stats), "server": dataclasses.asdict(server.broadcast_stats)}
            ws.send(json.dumps({**counters, "connected": broadcast.connected}))
        elif command == "join":
            ws.join(rest)
            ws.send(json.dumps(sorted(ws.rooms)))
        elif command == "leave":
            ws.leave(rest)
            ws.send(json.dumps(sorted(ws.rooms)))
        elif command.startswith("@"):
            server.broadcast(rest, room=command[1:])
        else:
            server.broadcast(message)

    def process_request(request: simplews.Request) -> Any:
        if request.path_only == "/healthz":
            return 200, [("Content-Type", "text/plain")], "ok\n"
        return None

    server = simplews.Server(
        on_message=on_message, process_request=process_request, port=args.port, max_message_size=None, broadcast=broadcast
    )
    try:
        server.start()
    except simplews.RedisUnavailable as exc:
        server.shutdown()
        raise SystemExit(str(exc))
    print(f"serving {server.url} pid {os.getpid()}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
