"""UTF-8 handling (Autobahn 6.x): invalid sequences fail with 1007, fast; valid ones split anywhere pass."""

from __future__ import annotations

import pytest
from endpoints import Session
from rawpeer import CLOSE, CONT, TEXT, close_payload

PREFIX = "κόσμε".encode()

# sequences that are invalid however they continue (overlongs, surrogates, > U+10FFFF, stray bytes)
INVALID = {
    "overlong-2-slash": b"\xc0\xaf",
    "overlong-2-max": b"\xc1\xbf",
    "overlong-3-slash": b"\xe0\x80\xaf",
    "overlong-3-max": b"\xe0\x9f\xbf",
    "overlong-4-slash": b"\xf0\x80\x80\xaf",
    "overlong-4-max": b"\xf0\x8f\xbf\xbf",
    "overlong-nul-2": b"\xc0\x80",
    "overlong-nul-3": b"\xe0\x80\x80",
    "5-byte-form": b"\xf8\x88\x80\x80\xaf",
    "6-byte-form": b"\xfc\x84\x80\x80\x80\xaf",
    "surrogate-d800": b"\xed\xa0\x80",
    "surrogate-db7f": b"\xed\xad\xbf",
    "surrogate-dc00": b"\xed\xb0\x80",
    "surrogate-dfff": b"\xed\xbf\xbf",
    "surrogate-pair": b"\xed\xa0\x80\xed\xb0\x80",
    "above-10ffff": b"\xf4\x90\x80\x80",
    "f7-bfbfbf": b"\xf7\xbf\xbf\xbf",
    "f5": b"\xf5\x80\x80\x80",
    "fe": b"\xfe",
    "ff": b"\xff",
    "lone-continuation-80": b"\x80",
    "lone-continuation-bf": b"\xbf",
    "continuations": b"\x80\xbf\x80",
    "start-then-space": b"\xc2 ",
}
# sequences that are only a truncated start: invalid once anything else (or the end) follows
TRUNCATED = {
    "c2": b"\xc2",
    "df": b"\xdf",
    "e0-a0": b"\xe0\xa0",
    "e1": b"\xe1",
    "ef-bf": b"\xef\xbf",
    "f0-90-80": b"\xf0\x90\x80",
    "f4-8f-bf": b"\xf4\x8f\xbf",
    "f1": b"\xf1",
}
# prefixes that no valid continuation can repair: a receiver can fail on them alone
DOOMED_PREFIXES = {
    "c0": b"\xc0",
    "e0-80": b"\xe0\x80",
    "ed-a0": b"\xed\xa0",
    "ed-bf": b"\xed\xbf",
    "f0-80": b"\xf0\x80",
    "f4-90": b"\xf4\x90",
    "f5": b"\xf5",
    "80": b"\x80",
}
ALL_BAD = {**INVALID, **{f"truncated-{k}": v for k, v in TRUNCATED.items()}}
# every boundary of the UTF-8 encoding, and noncharacters (valid UTF-8, Autobahn 6.x accepts them)
VALID = "\x00\x7f\x80\u07ff\u0800\ud7ff\ue000\ufffd\ufffe\uffff\U00010000\U0010ffff κόσμε €😀".encode()


@pytest.mark.parametrize("bad", ALL_BAD.values(), ids=list(ALL_BAD))
def test_invalid_utf8_single_frame(session: Session, bad: bytes) -> None:
    session.peer.send(TEXT, PREFIX + bad + b"edited")
    session.finish(1007)


@pytest.mark.parametrize("bad", TRUNCATED.values(), ids=list(TRUNCATED))
def test_truncated_at_message_end(session: Session, bad: bytes) -> None:
    session.peer.send(TEXT, PREFIX, fin=False)
    session.peer.send(CONT, b"ok" + bad, fin=True)
    session.finish(1007)


@pytest.mark.parametrize("bad", ALL_BAD.values(), ids=list(ALL_BAD))
def test_fail_fast_on_fragment(session: Session, bad: bytes) -> None:
    # like Autobahn 6.4.1: the bad fragment must be refused before the message ends
    session.peer.send(TEXT, PREFIX, fin=False)
    session.peer.send(CONT, bad + b"x", fin=False)
    session.finish(1007)


@pytest.mark.parametrize("bad", DOOMED_PREFIXES.values(), ids=list(DOOMED_PREFIXES))
def test_fail_fast_on_doomed_prefix_at_fragment_end(session: Session, bad: bytes) -> None:
    # like Autobahn 6.4.2: the fragment ends inside a sequence that can no longer be valid
    session.peer.send(TEXT, PREFIX, fin=False)
    session.peer.send(CONT, bad, fin=False)
    session.finish(1007)


@pytest.mark.parametrize("bad", [*DOOMED_PREFIXES.values(), b"\xf4\x90\x80\x80x"], ids=[*DOOMED_PREFIXES, "f4-90-80-80"])
def test_fail_fast_inside_one_frame_sent_in_chunks(session: Session, bad: bytes) -> None:
    # like Autobahn 6.4.3/6.4.4: one frame whose bytes arrive in chops; refuse at the bad chop
    rest = b"edited" * 10
    payload = PREFIX + bad + rest
    data = session.peer.frame(TEXT, payload)
    cut = len(data) - len(rest)
    session.peer.send_raw(data[: cut - len(bad)])
    session.peer.send_raw(data[cut - len(bad) : cut])
    session.finish(1007)  # the rest of the frame is never sent


def test_valid_utf8_single_frame(session: Session) -> None:
    session.peer.send(TEXT, VALID)
    session.peer.expect_message(TEXT, VALID)
    session.close_normally()


def test_valid_utf8_split_across_two_fragments_at_every_position(session: Session) -> None:
    peer = session.peer
    for cut in range(len(VALID) + 1):
        peer.send(TEXT, VALID[:cut], fin=False)
        peer.send(CONT, VALID[cut:], fin=True)
        peer.expect_message(TEXT, VALID)
    session.close_normally()


def test_valid_utf8_one_byte_per_fragment(session: Session) -> None:
    peer = session.peer
    blob = b"".join(peer.frame(TEXT if i == 0 else CONT, VALID[i : i + 1], fin=i == len(VALID) - 1) for i in range(len(VALID)))
    peer.send_raw(blob)
    peer.expect_message(TEXT, VALID)
    session.close_normally()


def test_valid_utf8_frame_chopped_at_every_position(session: Session) -> None:
    peer = session.peer
    for cut in range(1, len(VALID)):
        data = peer.frame(TEXT, VALID)
        header = len(data) - len(VALID)
        peer.send_raw(data[: header + cut])
        peer.send_raw(data[header + cut :])
        peer.expect_message(TEXT, VALID)
    session.close_normally()


@pytest.mark.parametrize("bad", [*INVALID.values(), *TRUNCATED.values()], ids=[*INVALID, *TRUNCATED])
def test_invalid_utf8_close_reason(session: Session, bad: bytes) -> None:
    # Autobahn 7.5.1
    session.peer.send(CLOSE, close_payload(1000, b"bye " + bad))
    session.finish(1007)


def test_valid_utf8_close_reason_echoed(session: Session) -> None:
    reason = "κόσμε 😀".encode()
    session.peer.send(CLOSE, close_payload(1000, reason))
    session.peer.expect_close_frame(1000, reason)
    session.end_tcp()
    assert session.endpoint_code() == 1000
