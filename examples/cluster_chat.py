"""The chat room of chat.py as several processes on several ports, sharing one Redis.

Run, with a redis-server on 127.0.0.1:6379 and the redis extra installed
(pip install 'simplews[redis]'), each in its own terminal:

    python examples/cluster_chat.py --port 8001
    python examples/cluster_chat.py --port 8002

then open http://127.0.0.1:8001/ and http://127.0.0.1:8002/: a line typed on
either page shows on both: each process's server broadcasts through a
simplews.RedisBroadcast (``Server(..., broadcast=...)``), so server.broadcast()
reaches the clients of every process. The page and the room are chat.py's.
"""

from __future__ import annotations

import argparse
from typing import List, Optional

from chat import http_url, make_server

import simplews


def main(argv: Optional[List[str]] = None) -> None:
    """Run one chat process until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the Redis every process shares")
    args = parser.parse_args(argv)
    broadcast = simplews.RedisBroadcast(args.redis, channel_prefix="chat")
    server = make_server(args.host, args.port, broadcast=broadcast)
    try:
        server.start()  # connects to Redis first
    except simplews.RedisUnavailable as exc:
        server.shutdown()
        raise SystemExit(str(exc))
    print(f"chat page on {http_url(server)} (WebSocket at {server.url}ws), sharing {broadcast.url}; Ctrl-C stops", flush=True)
    server.serve_forever()  # until Ctrl-C; its shutdown stops the broadcast too


if __name__ == "__main__":
    main()
