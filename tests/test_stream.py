"""Stream: the end of a TLS stream that came in the same read as the last data."""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any

import trustme

from simplews.stream import Stream
from simplews.tls import TLS


def test_close_notify_read_with_the_last_data_ends_the_stream() -> None:
    """A TLS peer that sends its last bytes and close_notify together, then waits (as stunnel does) with TCP open."""
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("localhost").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    ours, theirs = socket.socketpair()
    theirs.settimeout(10)
    failures: list = []

    def peer() -> None:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = server_ctx.wrap_bio(incoming, outgoing, server_side=True)
        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    theirs.sendall(outgoing.read())
                    incoming.write(theirs.recv(65536))
            theirs.sendall(outgoing.read())
            tls.write(b"last words")
            try:
                tls.unwrap()  # queues close_notify, then wants the peer's
            except ssl.SSLWantReadError:
                pass
            theirs.sendall(outgoing.read())  # the data and the close_notify in one segment
            theirs.recv(65536)  # wait, TCP open, until our side is done
        except Exception as exc:  # noqa: BLE001 - reported to the test thread
            failures.append(exc)

    thread = threading.Thread(target=peer)
    thread.start()
    stream: Any = None
    try:
        stream = Stream(ours)
        stream.start_tls(TLS(client_ctx, server_side=False, server_hostname="localhost"), None)
        got = b""
        while not got.endswith(b"last words"):
            chunk = stream.read(None)  # forever: a missed end would hang here (the test's timeout), not pass
            assert chunk
            got += chunk
        assert stream.read(None) == b""
        assert stream.read_nowait() == b""
    finally:
        ours.shutdown(socket.SHUT_RDWR)
        thread.join(10)
        ours.close()
        theirs.close()
    assert not failures
