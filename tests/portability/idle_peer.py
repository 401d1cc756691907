"""An independent peer (websockets, asyncio) for many idle connections, run in its own process.

Prints ``port N`` once listening. On each connection, a text message ``ping
me`` makes it send a ping and print ``pong <path>`` when the pong comes back
(``lost <path>`` if none does within 30 s). Exits when its stdin closes.
"""

from __future__ import annotations

import asyncio
import sys

from websockets.asyncio.server import ServerConnection, serve


async def handler(ws: ServerConnection) -> None:
    async for message in ws:
        if message == "ping me":
            waiter = await ws.ping(b"are you there")
            try:
                await asyncio.wait_for(waiter, 30)
                print("pong", ws.request.path, flush=True)
            except asyncio.TimeoutError:
                print("lost", ws.request.path, flush=True)


async def main() -> None:
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, compression=None, backlog=1024) as server:
        print("port", server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


if __name__ == "__main__":
    asyncio.run(main())
