#!/usr/bin/env python3
"""Fuzz target: the frame parser and the protocol state machine fed arbitrary bytes.

Run with atheris (``python fuzz/fuzz_frames.py -runs=100000``); the tests in
``tests/reliability`` drive :func:`check` with hypothesis when atheris is missing.

The first input byte picks the configuration (side, size limit, permessage-deflate,
how the rest is cut into reads); the rest is what the peer sends. The invariants:
``Protocol.receive_data`` never raises, yields only events, honours the size
limit, and once it fails it answers with exactly one close frame. ``parse_frame``
and ``parse_close`` raise nothing but :class:`RemoteProtocolError`.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _instrumented() -> Any:
    """Under atheris, instrument simplews (only) for coverage feedback; otherwise do nothing."""
    if __name__ == "__main__":
        import atheris

        return atheris.instrument_imports(include=["simplews"])
    return contextlib.nullcontext()


with _instrumented():
    from simplews.deflate import PerMessageDeflate
    from simplews.exceptions import RemoteProtocolError
    from simplews.frames import parse_close, parse_frame
    from simplews.protocol import Close, Message, Ping, Pong, Protocol, State

LIMITS = (None, 0, 125, 4096)
CUTS = (1, 2, 3, 5, 7, 13, 64, 1 << 20)
EVENT_TYPES = (Message, Ping, Pong, Close)
MAX_HELD = 14 + 125  # the longest header plus the longest control payload


def make_protocol(flags: int) -> Protocol:
    """The protocol configuration chosen by the first input byte."""
    is_client = bool(flags & 1)
    limit = LIMITS[(flags >> 1) & 3]
    extension = None
    if flags & 8:
        extension = PerMessageDeflate(is_client=is_client, local_no_context_takeover=False, remote_no_context_takeover=False)
    return Protocol(is_client, max_message_size=limit, extension=extension)


def feed(protocol: Protocol, data: bytes, cut: int) -> list:
    """Feed ``data`` in reads of ``cut`` bytes, then end of stream; check every event."""
    events: list = []
    for start in range(0, len(data), cut):
        got = protocol.receive_data(data[start : start + cut])
        assert isinstance(got, list)
        # bounded memory: at most one partial header or control frame is kept,
        # or the unread tail of the read that carried the close frame
        assert len(protocol._buf) <= MAX_HELD or protocol.close_rcvd is not None, len(protocol._buf)
        for event in got:
            assert isinstance(event, EVENT_TYPES), event
            if isinstance(event, Message):
                assert isinstance(event.data, (str, bytes))
                limit = protocol.max_message_size
                if limit is not None:
                    size = len(event.data.encode()) if isinstance(event.data, str) else len(event.data)
                    assert size <= limit, (size, limit)
        events += got
    return events


def check(data: bytes) -> None:
    """One fuzz input: raises AssertionError (or anything unexpected) on a bug."""
    if not data:
        return
    flags, body = data[0], data[1:]
    protocol = make_protocol(flags)
    events = feed(protocol, body, CUTS[flags >> 5])
    closes = sum(isinstance(e, Close) for e in events)
    assert closes <= 1
    out = b"".join(bytes(b) for b in protocol.data_to_send())
    if protocol.failure is not None:
        assert isinstance(protocol.failure, RemoteProtocolError)
        assert 1000 <= protocol.failure.code <= 4999
        assert protocol.state is not State.OPEN
        assert protocol.close_sent is not None
    if protocol.close_sent is not None and out:
        # our close frame was queued exactly once, after any pongs
        closing = Protocol(not protocol.is_client, max_message_size=None)
        replies = closing.receive_data(out)
        assert sum(isinstance(e, Close) for e in replies) <= 1
    protocol.receive_data(b"")
    assert protocol.state is State.CLOSED
    protocol.closed_exception()  # describable whatever happened
    try:
        parse_frame(body)
    except RemoteProtocolError:
        pass
    try:
        parse_close(body[:125])
    except RemoteProtocolError:
        pass


def main() -> None:
    """Run under atheris with libFuzzer's command-line options."""
    import atheris

    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
