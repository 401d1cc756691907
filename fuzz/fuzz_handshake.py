#!/usr/bin/env python3
"""Fuzz target: the HTTP handshake parsers (request, response, extension offers).

Run with atheris (``python fuzz/fuzz_handshake.py -runs=100000``); the tests in
``tests/reliability`` drive :func:`check` with hypothesis when atheris is missing.

Invariant: whatever bytes a peer sends, the parsers either return a value or raise
:class:`simplews.InvalidHandshake` (a subclass of :class:`simplews.WebSocketError`),
never IndexError, ValueError, UnicodeDecodeError or anything else.
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
    from simplews import deflate, handshake
    from simplews.exceptions import InvalidHandshake

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def _head(data: bytes) -> bytes:
    """Make the input end like an HTTP head so the parsers get past the framing."""
    end = handshake.find_head_end(data, None)
    return data[:end] if end >= 0 else data + b"\r\n\r\n"


def check(data: bytes) -> None:
    """One fuzz input: raises anything but InvalidHandshake only on a bug."""
    try:
        handshake.find_head_end(data, 1024)
    except InvalidHandshake as exc:
        assert exc.status == 431
    head = _head(data)
    try:
        request = handshake.parse_request(head)
    except InvalidHandshake:
        pass
    else:
        assert isinstance(request.path, str) and isinstance(request.method, str)
        for name, value in request.headers.items():
            assert "\r" not in value and "\n" not in value and "\r" not in name
        try:
            handshake.check_request(request)
        except InvalidHandshake:
            pass
        _extensions(request.headers.get_all("Sec-WebSocket-Extensions"), server=True)
        handshake.parse_token_list(request.headers.get_all("Sec-WebSocket-Protocol"))
    try:
        response = handshake.parse_response(head)
    except InvalidHandshake:
        pass
    else:
        try:
            handshake.check_response(response, KEY, subprotocols=["chat"])
        except InvalidHandshake:
            pass
        _extensions(response.headers.get_all("Sec-WebSocket-Extensions"), server=False)
    # the raw bytes as one extension header value, as the peer could send it
    _extensions([data.decode("latin-1")], server=True)
    _extensions([data.decode("latin-1")], server=False)


def _extensions(values: list, *, server: bool) -> None:
    """Negotiate permessage-deflate from header values a peer sent."""
    if not values:
        return
    config = deflate.DeflateConfig()
    try:
        if server:
            deflate.server_accept(values, config)
        else:
            deflate.client_accept(values, config)
    except InvalidHandshake:
        pass


def main() -> None:
    """Run under atheris with libFuzzer's command-line options."""
    import atheris

    atheris.Setup(sys.argv, lambda data: check(bytes(data)))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
