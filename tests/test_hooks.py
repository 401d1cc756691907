"""simplews.hooks: request hooks tried in order, the first answer wins."""

from __future__ import annotations

from typing import Any, List, Optional

import pytest

import simplews
from simplews import Headers, Request, Response, chain_hooks


def test_first_answer_wins_and_later_hooks_do_not_run() -> None:
    calls: List[str] = []

    def make(name: str, answer: Any) -> Any:
        def hook(request: Request) -> Optional[Any]:
            calls.append(name)
            return answer

        return hook

    chain = chain_hooks(make("a", None), make("b", (403, [], "no")), make("c", Response(500)))
    assert chain(Request("/", Headers())) == (403, [], "no")
    assert calls == ["a", "b"]


def test_all_none_goes_on_and_hooks_share_the_request() -> None:
    def tag(request: Request) -> None:
        request.username = "set-by-first"

    seen: List[Optional[str]] = []
    chain = chain_hooks(tag, lambda request: seen.append(request.username))
    assert chain(Request("/", Headers())) is None
    assert seen == ["set-by-first"]
    assert chain_hooks()(Request("/", Headers())) is None


def test_an_exception_propagates_at_once() -> None:
    def boom(request: Request) -> None:
        raise KeyError("x")

    later: List[Request] = []
    with pytest.raises(KeyError):
        chain_hooks(boom, later.append)(Request("/", Headers()))
    assert later == []


def test_hooks_must_be_callable() -> None:
    with pytest.raises(TypeError):
        chain_hooks(lambda r: None, "not a hook")  # type: ignore[arg-type]


def test_exported() -> None:
    assert simplews.chain_hooks is chain_hooks and "chain_hooks" in simplews.__all__
