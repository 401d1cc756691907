"""Endpoints for the conformance tests.

A raw peer talks to a simplews echo server, or an "evil server" drives a simplews echo client.

Each conformance test receives a :class:`Session` whose ``peer`` is the raw
side; ``role`` is the role simplews plays ("server" or "client"). The
simplews side echoes every message it receives; its own verdict (the close
code it ends with) is checked too.
"""

from __future__ import annotations

import queue
import threading
from typing import Any, Optional

from rawpeer import RawPeer

import simplews

MiB = 1024 * 1024
#: large enough for the 16 MiB cases
MAX_SIZE = 64 * MiB
ROLES = ["server", "client"]
JOIN_TIMEOUT = 15.0

# deterministic traffic: no keepalive pings, no compression (RSV bits must stay reserved)
BASE_OPTIONS = {"compression": None, "ping_interval": None, "max_message_size": MAX_SIZE}


#: a text message that makes the simplews side start the close handshake itself
CLOSE_REQUEST = "please close with 4001"


def echo(ws: simplews.Connection, message: Any) -> None:
    """Echo ``message``, or close with 4001 when asked to."""
    if message == CLOSE_REQUEST:
        ws.close(4001, "asked to")
    else:
        ws.send(message)


class EchoClient:
    """A simplews client echo loop (``for m in ws: ws.send(m)``) on a thread of its own."""

    def __init__(self, url: str, options: dict) -> None:
        self.url = url
        self.options = options
        self.error: Optional[BaseException] = None
        self.close_code: Optional[int] = None
        self.ws: Optional[simplews.Connection] = None
        self.thread = threading.Thread(target=self._run, name="conformance-echo-client", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            ws = self.ws = simplews.connect(self.url, **self.options)
        except BaseException as exc:
            self.error = exc
            return
        try:
            for message in ws:
                echo(ws, message)
        except simplews.ConnectionClosed as exc:
            self.error = exc
        finally:
            ws.close()
            self.close_code = ws.close_code

    def join(self) -> None:
        """Wait for the client thread to end (bounded)."""
        self.thread.join(JOIN_TIMEOUT)
        assert not self.thread.is_alive(), "simplews client did not finish"


class Session:
    """A raw peer connected to a simplews endpoint in ``role``."""

    def __init__(self, role: str, peer: RawPeer, codes: queue.Queue[int], client: Optional[EchoClient]) -> None:
        self.role = role
        self.peer = peer
        self._codes = codes
        self.client = client

    def endpoint_code(self) -> int:
        """The close code the simplews side ended with (waits for it)."""
        if self.client is not None:
            self.client.join()
            assert self.client.close_code is not None, self.client.error
            return self.client.close_code
        return self._codes.get(timeout=JOIN_TIMEOUT)

    def finish(self, code: Optional[int], *, reply: bool = True) -> None:
        """Expect a close frame with ``code`` from simplews, then the proper TCP ending.

        simplews as a server must close TCP first; simplews as a client must
        wait for the server to do it (RFC 6455 section 7.1.1).
        """
        self.peer.expect_close_frame(code)
        self.end_tcp(reply_code=code if reply else None)
        assert self.endpoint_code() == (1005 if code is None else code)

    def end_tcp(self, reply_code: Optional[int] = None) -> None:
        """After the close frames: wait for the server's FIN, or as the server close TCP ourselves."""
        peer = self.peer
        if self.role == "server":
            if reply_code is not None:
                peer.send_close(reply_code)
            peer.wait_eof()
            peer.close()  # the server's FIN came first; now we may close too
        else:
            if reply_code is not None:
                peer.send_close(reply_code)
            assert peer.peer_still_open(), "simplews client closed TCP before the server"
            peer.close()

    def close_normally(self, code: int = 1000) -> None:
        """Run a clean close handshake started by the raw peer; check the echo and the TCP ending."""
        self.peer.send_close(code)
        self.peer.expect_close_frame(code)
        self.end_tcp()
        assert self.endpoint_code() == code


