"""256 MiB each way, sent in pieces and received in fragments, with a small bounded peak of Python memory."""

from __future__ import annotations

import json
import tracemalloc
import zlib
from typing import Any, Callable, Iterator, Tuple

import pytest
from websockets.sync.client import connect as ws_connect

import simplews

TOTAL = 256 * 1024 * 1024
PIECE = 256 * 1024
PEAK_LIMIT = 10 * 1024 * 1024
BLOCK = bytes(range(256)) * (PIECE // 256)
EXPECTED_CRC = 0
for _ in range(TOTAL // PIECE):
    EXPECTED_CRC = zlib.crc32(BLOCK, EXPECTED_CRC)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]  # 2 to 15 s each, by the machine's load


def _pieces() -> Iterator[bytes]:
    for _ in range(TOTAL // PIECE):
        yield BLOCK


def _digest(fragments: Any) -> Tuple[int, int]:
    """(size, CRC-32) of a stream of fragments, without keeping them."""
    size, crc = 0, 0
    for fragment in fragments:
        size += len(fragment)
        crc = zlib.crc32(fragment, crc)
    return size, crc


def _our_side(ws: simplews.Connection) -> None:
    """Receive 256 MiB in fragments, report its digest, send 256 MiB in pieces."""
    ws.send_json(_digest(ws.recv_streaming(timeout=60, max_size=None)))
    ws.send(_pieces())
    ws.recv(timeout=60)


def _peer_side(peer: Any) -> None:
    """The same with the websockets library."""
    peer.send(json.dumps(_digest(peer.recv_streaming())))
    peer.send(_pieces())
    peer.recv()


def _exchange(ws: Any, recv_json: Callable[[], Any], fragments: Callable[[], Any]) -> Tuple[Any, Tuple[int, int]]:
    ws.send(_pieces())
    theirs = recv_json()
    ours = _digest(fragments())
    ws.send("done")
    return theirs, ours


@pytest.mark.parametrize("peer", ["simplews", "websockets server", "websockets client"])
def test_256_mib_each_way_in_bounded_memory(
    peer: str, server_factory: Callable[..., simplews.Server], peer_server: Callable[..., str]
) -> None:
    if peer == "websockets server":
        url = peer_server(_peer_side, max_size=None)
    else:
        url = server_factory(_our_side, compression=None, ping_interval=None).url
    tracemalloc.start()
    try:
        if peer == "websockets client":
            with ws_connect(url, compression=None, max_size=None) as client:
                theirs, ours = _exchange(client, lambda: json.loads(client.recv(timeout=60)), client.recv_streaming)
        else:
            with simplews.connect(url, compression=None) as ws:
                theirs, ours = _exchange(
                    ws, lambda: ws.recv_json(timeout=60), lambda: ws.recv_streaming(timeout=60, max_size=None)
                )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert tuple(theirs) == (TOTAL, EXPECTED_CRC)
    assert ours == (TOTAL, EXPECTED_CRC)
    assert peak < PEAK_LIMIT, f"peak {peak / 2**20:.1f} MiB"
    print(f"{peer}: peak traced memory {peak / 2**20:.2f} MiB for 2 x 256 MiB")

