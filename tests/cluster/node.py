"""One simplews server process of a cluster, for the tests: ``python node.py --redis URL [--port 0]``.

Every message a client sends is broadcast to this server's clients and
published to the others through a :class:`simplews.RedisBroadcast`, whose
``deliver`` broadcasts what the others publish (today's public API only).
Two text messages are commands: ``whoami`` answers ``{"pid", "port"}`` and
``stats`` answers the broadcast's counters (and ``connected``) as JSON.
``GET /healthz`` answers 200 for a load balancer's health checks. Prints
``serving ws://HOST:PORT/ pid N`` once it accepts, runs until SIGINT/SIGTERM,
then stops the broadcast and exits 0.
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
        if message == "whoami":
            ws.send(json.dumps({"pid": os.getpid(), "port": server.port}))
        elif message == "stats":
            ws.send(json.dumps({**dataclasses.asdict(broadcast.stats), "connected": broadcast.connected}))
        else:
            server.broadcast(message)
            broadcast.publish(message)

    def process_request(request: simplews.Request) -> Any:
        if request.path_only == "/healthz":
            return 200, [("Content-Type", "text/plain")], "ok\n"
        return None

    server = simplews.Server(on_message=on_message, process_request=process_request, port=args.port, max_message_size=None)
    broadcast.start(lambda message, room: server.broadcast(message))
    try:
        server.start()
        print(f"serving {server.url} pid {os.getpid()}", flush=True)
        server.serve_forever()
    finally:
        broadcast.stop()


if __name__ == "__main__":
    main()
