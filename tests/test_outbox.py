"""Outbox bounds and overflow policies (the queue alone; tests/client/test_outbox.py runs it in a Client)."""

from __future__ import annotations

import pytest

import simplews
from simplews import Outbox, OutboxFull


def fill(outbox: Outbox, messages: list) -> None:
    for message in messages:
        outbox.put(message)


def test_drop_oldest_keeps_the_newest() -> None:
    box = Outbox(max_messages=3)
    fill(box, ["a", "b", "c", "d", "e"])
    assert (box.clear(), box.dropped) == (["c", "d", "e"], 2)


def test_drop_newest_keeps_the_oldest() -> None:
    box = Outbox(max_messages=3, overflow="drop_newest")
    fill(box, ["a", "b", "c", "d", "e"])
    assert (box.clear(), box.dropped) == (["a", "b", "c"], 2)


def test_raise_refuses_and_keeps_what_it_had() -> None:
    box = Outbox(max_messages=2, overflow="raise")
    fill(box, [b"a", b"b"])
    with pytest.raises(OutboxFull, match="full"):
        box.put(b"c")
    assert isinstance(OutboxFull("x"), simplews.WebSocketError)
    assert (box.clear(), box.dropped) == ([b"a", b"b"], 0)


def test_byte_bound_counts_text_in_utf8() -> None:
    box = Outbox(max_messages=None, max_bytes=6)
    fill(box, ["é", "é", "é"])  # 2 bytes each: full
    assert (len(box), box.size) == (3, 6)
    box.put(b"x")  # drops the oldest to fit
    assert box.clear() == ["é", "é", b"x"] and box.size == 0


def test_a_message_larger_than_the_outbox_never_fits() -> None:
    box = Outbox(max_bytes=4)
    fill(box, [b"ab", b"too large"])
    assert (box.clear(), box.dropped) == ([b"ab"], 1)  # not emptied to make room for nothing
    with pytest.raises(OutboxFull, match="larger than the outbox"):
        Outbox(max_bytes=4, overflow="raise").put("12345")


def test_get_and_unget_keep_order_and_keywords() -> None:
    box = Outbox()
    box.put("a", text=True)
    box.put(b"b")
    assert box.get() == ("a", {"text": True})
    box.unget("a", text=True)
    assert [box.get(), box.get(), box.get()] == [("a", {"text": True}), (b"b", {}), None]


@pytest.mark.parametrize(
    "kwargs", [{"overflow": "drop"}, {"max_messages": None, "max_bytes": None}, {"max_messages": 0}, {"max_bytes": -1}]
)
def test_bad_configuration(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Outbox(**kwargs)
