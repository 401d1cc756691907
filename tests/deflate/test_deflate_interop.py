"""permessage-deflate interop with the ``websockets`` library, both directions, over a
recording relay: every parameter combination websockets supports, messages of several
sizes (fragmented compressed messages included), and proof on the wire that
compression was negotiated and used (RSV1 on first frames only, fewer bytes)."""

from __future__ import annotations

import itertools
import threading
from typing import Any, Iterator, List, Optional, Tuple, Union

import pytest
import websockets
from deflate_wire import Relay, compressible, parse_frames
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.extensions.permessage_deflate import (
    PerMessageDeflate as TheirDeflate,
)
from websockets.sync.client import connect as ws_connect
from websockets.sync.server import serve as ws_serve

import simplews
from simplews.deflate import DeflateConfig, PerMessageDeflate

BITS = [None, 9, 10, 11, 12, 13, 14, 15]
FLAGS = list(itertools.product([False, True], repeat=2))
FRAME_SIZE = 4096
THRESHOLD = 64

#: text and binary, below the threshold, empty, larger than every window, and several
#: fragments long once compressed (FRAME_SIZE) so both sides inflate fragmented messages
MESSAGES: List[Union[str, bytes]] = [
    "",
    b"",
    "tiny",
    compressible(1000).decode(),
    "héllo wörld ☃ " * 700,
    compressible(20_000, seed=1),
    compressible(60_000, seed=2) + bytes(range(256)) * 16,  # > the largest (32 KiB) window
]
TOTAL = sum(len(m.encode() if isinstance(m, str) else m) for m in MESSAGES)


def _size(message: Union[str, bytes]) -> int:
    return len(message.encode() if isinstance(message, str) else message)


def _check_wire(stream: bytes, *, ours: bool) -> None:
    """RSV1 only on the first frame of a data message, never on control or continuation
    frames; when ``ours``, exactly the messages of at least THRESHOLD bytes are compressed."""
    messages: List[Tuple[bool, int]] = []  # (compressed, frames)
    for frame in parse_frames(stream):
        if frame.opcode >= 8 or frame.opcode == 0:
            assert not frame.rsv1, frame
            if frame.opcode == 0:
                messages[-1] = (messages[-1][0], messages[-1][1] + 1)
        else:
            messages.append((frame.rsv1, 1))
    assert len(messages) == len(MESSAGES)
    if ours:
        assert [compressed for compressed, _ in messages] == [_size(m) >= THRESHOLD for m in MESSAGES]
        assert messages[-1][1] > 1  # the largest message went out as several compressed frames
    else:
        assert any(compressed for compressed, _ in messages)


def _same_parameters(ours: PerMessageDeflate, theirs: TheirDeflate) -> None:
    """Both ends agreed on the same parameters (theirs are named from their side)."""
    assert ours.local_no_context_takeover == theirs.remote_no_context_takeover
    assert ours.remote_no_context_takeover == theirs.local_no_context_takeover
    assert ours.local_max_window_bits == theirs.remote_max_window_bits
    assert ours.remote_max_window_bits == theirs.local_max_window_bits


# --- our client -> websockets server ------------------------------------------------------


class TheirServer:
    """The websockets library's sync echo server (large messages echoed in fragments)."""

    def __init__(self, factory: Optional[ServerPerMessageDeflateFactory]) -> None:
        self.extensions: List[Any] = []

        def echo(ws: Any) -> None:
            self.extensions.append(ws.protocol.extensions)
            for message in ws:
                if len(message) > 10_000:
                    ws.send([message[i : i + FRAME_SIZE] for i in range(0, len(message), FRAME_SIZE)])
                else:
                    ws.send(message)

        self.server = ws_serve(echo, "127.0.0.1", 0, compression=None, extensions=[factory] if factory else None, max_size=None)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.address = self.server.socket.getsockname()[:2]

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(10)


@pytest.fixture
def their_server(request: Any) -> Iterator[TheirServer]:
    server = TheirServer(request.param)
    yield server
    server.close()


def _exchange_with_their_server(server: TheirServer, config: Any) -> None:
    relay = Relay(server.address)
    try:
        with simplews.connect(f"ws://127.0.0.1:{relay.port}/", compression=config, frame_size=FRAME_SIZE, max_message_size=None) as ws:
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=10) == message
            ours = ws.protocol.extension
            answer = ws.response.headers.get("Sec-WebSocket-Extensions")
    finally:
        relay.close()
    assert answer is not None and answer.startswith("permessage-deflate")
    assert isinstance(ours, PerMessageDeflate)
    (theirs,) = server.extensions[0]
    _same_parameters(ours, theirs)
    _check_wire(bytes(relay.up), ours=True)
    _check_wire(bytes(relay.down), ours=False)
    assert len(relay.up) < TOTAL // 2 and len(relay.down) < TOTAL // 2


def _server_factory_id(params: Any) -> str:
    snct, cnct, sbits, cbits = params
    return f"snct={int(snct)}-cnct={int(cnct)}-sbits={sbits}-cbits={cbits}"


SERVER_CONFIGS = list(itertools.product([False, True], [False, True], BITS, BITS))


@pytest.mark.parametrize(
    "their_server",
    [ServerPerMessageDeflateFactory(*params) for params in SERVER_CONFIGS],
    ids=[_server_factory_id(p) for p in SERVER_CONFIGS],
    indirect=True,
)
def test_our_client_their_server_configs(their_server: TheirServer) -> None:
    """Our default offer against every server configuration websockets supports."""
    _exchange_with_their_server(their_server, "deflate")


#: our own offers: each flag, and window bits for each side (pairs cover every value)
OUR_CONFIGS = [
    (snct, cnct, sbits, cbits)
    for snct, cnct in FLAGS
    for sbits, cbits in [(None, None), (9, 15), (10, 14), (11, 13), (12, 12), (13, 11), (14, 10), (15, 9), (None, 9), (9, None)]
]


@pytest.mark.parametrize("their_server", [ServerPerMessageDeflateFactory()], ids=["default"], indirect=True)
@pytest.mark.parametrize("params", OUR_CONFIGS, ids=[_server_factory_id(p) for p in OUR_CONFIGS])
def test_our_client_offers_their_server(their_server: TheirServer, params: Tuple[bool, bool, Optional[int], Optional[int]]) -> None:
    """Each parameter of our offer is honoured by websockets' default server."""
    snct, cnct, sbits, cbits = params
    config = DeflateConfig(
        server_no_context_takeover=snct, client_no_context_takeover=cnct, server_max_window_bits=sbits, client_max_window_bits=cbits
    )
    _exchange_with_their_server(their_server, config)


@pytest.mark.parametrize("their_server", [ServerPerMessageDeflateFactory(client_max_window_bits=8)], indirect=True)
def test_our_client_refuses_an_8_bit_window(their_server: TheirServer) -> None:
    """zlib cannot compress with 256 bytes: the client fails the connection clearly (as websockets' own client does)."""
    with pytest.raises(simplews.NegotiationError, match="client_max_window_bits=8"):
        simplews.connect(f"ws://{their_server.address[0]}:{their_server.address[1]}/")


@pytest.mark.parametrize(
    "their_server", [ServerPerMessageDeflateFactory(client_max_window_bits=10, require_client_max_window_bits=True)], indirect=True
)
def test_our_client_their_server_requiring_client_bits(their_server: TheirServer) -> None:
    _exchange_with_their_server(their_server, "deflate")
    assert their_server.extensions[0][0].remote_max_window_bits == 10


# --- websockets client -> our server ------------------------------------------------------


def _echo(ws: simplews.Connection, message: Any) -> None:
    ws.send(message)


def _exchange_with_our_server(server: simplews.Server, factory: Optional[ClientPerMessageDeflateFactory]) -> Tuple[Any, Any, Relay]:
    """Run MESSAGES through websockets' client and our server; return (ours, theirs, relay)."""
    relay = Relay(("127.0.0.1", server.port))
    try:
        url = f"ws://127.0.0.1:{relay.port}/"
        # ping_interval=None: websockets' keepalive thread joins its reader thread while close()
        # joins it too, which PyPy 3.9's Thread.join cannot survive (its own race, fixed in later
        # PyPy); keepalive is not what these tests are about
        with ws_connect(url, compression=None, extensions=[factory] if factory else None, max_size=None, ping_interval=None) as ws:
            for message in MESSAGES:
                if _size(message) > 10_000:  # a fragmented compressed message from their side
                    ws.send([message[i : i + FRAME_SIZE] for i in range(0, len(message), FRAME_SIZE)])
                else:
                    ws.send(message)
                assert ws.recv(timeout=10) == message
            theirs = ws.protocol.extensions
            (conn,) = server.connections
            ours = conn.protocol.extension
    finally:
        relay.close()
    return ours, theirs, relay


@pytest.fixture
def our_server(request: Any) -> Iterator[simplews.Server]:
    with simplews.serve(on_message=_echo, port=0, compression=request.param, frame_size=FRAME_SIZE, max_message_size=None) as server:
        yield server


CLIENT_CONFIGS = list(itertools.product([False, True], [False, True], BITS, [None, True, *BITS[1:]]))


@pytest.mark.parametrize("our_server", ["deflate"], indirect=True)
@pytest.mark.parametrize("params", CLIENT_CONFIGS, ids=[_server_factory_id(p) for p in CLIENT_CONFIGS])
def test_their_client_offers_our_server(our_server: simplews.Server, params: Tuple[bool, bool, Optional[int], Any]) -> None:
    """Every offer websockets' client can make (client_max_window_bits absent, bare, 9..15)."""
    ours, theirs, relay = _exchange_with_our_server(our_server, ClientPerMessageDeflateFactory(*params))
    assert isinstance(ours, PerMessageDeflate)
    _same_parameters(ours, theirs[0])
    _check_wire(bytes(relay.down), ours=True)
    _check_wire(bytes(relay.up), ours=False)
    assert len(relay.up) < TOTAL // 2 and len(relay.down) < TOTAL // 2


@pytest.mark.parametrize(
    "our_server",
    [
        DeflateConfig(server_no_context_takeover=s, client_no_context_takeover=c, server_max_window_bits=sb, client_max_window_bits=cb)
        for s, c, sb, cb in OUR_CONFIGS
    ],
    ids=[_server_factory_id(p) for p in OUR_CONFIGS],
    indirect=True,
)
@pytest.mark.parametrize("client_bits", [True, None], ids=["client-bits-offered", "client-bits-absent"])
def test_their_client_our_server_configs(our_server: simplews.Server, client_bits: Any) -> None:
    """Our server's settings are imposed on websockets' client, with and without client_max_window_bits offered."""
    ours, theirs, relay = _exchange_with_our_server(our_server, ClientPerMessageDeflateFactory(client_max_window_bits=client_bits))
    _same_parameters(ours, theirs[0])
    config = our_server._policy.deflate
    assert ours.local_no_context_takeover == config.server_no_context_takeover
    assert ours.remote_no_context_takeover == config.client_no_context_takeover
    assert ours.local_max_window_bits == (config.server_max_window_bits or 15)
    expected_client_bits = (config.client_max_window_bits or 15) if client_bits else 15
    assert ours.remote_max_window_bits == expected_client_bits
    _check_wire(bytes(relay.down), ours=True)


@pytest.mark.parametrize("our_server", ["deflate"], indirect=True)
def test_their_8_bit_server_window_offer_is_declined(our_server: simplews.Server) -> None:
    """An offer we cannot honour is declined, not failed: the connection works uncompressed."""
    ours, theirs, relay = _exchange_with_our_server(our_server, ClientPerMessageDeflateFactory(server_max_window_bits=8))
    assert ours is None and not theirs
    assert not any(frame.rsv1 for frame in parse_frames(bytes(relay.down)) + parse_frames(bytes(relay.up)))


@pytest.mark.parametrize("our_server", [None], indirect=True)
def test_compression_off(our_server: simplews.Server) -> None:
    """compression=None on both sides of the wire: no offer accepted, nothing compressed."""
    ours, theirs, relay = _exchange_with_our_server(our_server, ClientPerMessageDeflateFactory())
    assert ours is None and not theirs
    assert b"Sec-WebSocket-Extensions" not in bytes(relay.down).split(b"\r\n\r\n")[0]
    assert len(relay.down) > TOTAL


@pytest.mark.skipif(
    int(websockets.__version__.split(".")[0]) < 16,
    reason="websockets 15 (the newest for Python 3.9) accepts server_max_window_bits=8, then zlib refuses"
    " its 8-bit compressor and it answers 500; later versions decline the parameter",
)
@pytest.mark.parametrize("their_server", [ServerPerMessageDeflateFactory()], ids=["default"], indirect=True)
def test_our_8_bit_server_window_request_is_declined_by_them(their_server: TheirServer) -> None:
    """Asking for server_max_window_bits=8 (which we could inflate) makes websockets decline:
    the connection goes on without compression."""
    url = f"ws://{their_server.address[0]}:{their_server.address[1]}/"
    with simplews.connect(url, compression=DeflateConfig(server_max_window_bits=8)) as ws:
        assert ws.response.headers.get("Sec-WebSocket-Extensions") is None and ws.protocol.extension is None
        ws.send(compressible(10_000))
        assert ws.recv(timeout=10) == compressible(10_000)
    assert their_server.extensions == [[]]
