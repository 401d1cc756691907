"""The writer role and the end of a connection: whoever releases a role last closes the descriptor."""

from __future__ import annotations

import socket
import threading
from typing import Any, List

import pytest
from helpers import wait_for
from rawpeers import RawServer

import simplews


@pytest.mark.timeout(120)
def test_the_descriptor_is_closed_when_the_connection_ends_while_a_send_holds_the_writer_role() -> None:
    with RawServer() as raw:
        accepted = raw.accept_in_thread()
        ws = simplews.connect(raw.url, ping_interval=None, compression=None)
        peer, _ = accepted.result()
        inside, go_on = threading.Event(), threading.Event()
        write = ws.stream.write

        def paused_write(*args: Any, **kwargs: Any) -> None:
            """Hold the sender inside the write path, writer role held, until the test lets it go."""
            inside.set()
            assert go_on.wait(30)
            write(*args, **kwargs)

        ws.stream.write = paused_write  # type: ignore[method-assign]
        errors: List[BaseException] = []

        def send() -> None:
            try:
                ws.send("held")
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        try:
            assert inside.wait(30)
            # the peer ends its side: the scheduler, reading the idle connection, ends it while the
            # sender still holds the writer role, so the descriptor cannot be closed then
            peer.shutdown(socket.SHUT_WR)
            assert wait_for(lambda: ws.close_code == 1006, timeout=30)
            assert not ws.stream.closed
        finally:
            go_on.set()
            sender.join(30)
            peer.close()
        assert not sender.is_alive()
        assert len(errors) == 1 and isinstance(errors[0], simplews.ConnectionClosed), errors
        assert wait_for(lambda: ws.stream.closed, timeout=10)  # the sender, leaving last, closed it
        assert ws.stream.sock.fileno() == -1
