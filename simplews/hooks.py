"""Request hooks that compose: one ``process_request`` made of several."""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional

from .handshake import Request

__all__ = ["as_hooks", "chain_hooks", "first_answer"]

RequestHook = Callable[[Request], Optional[Any]]


def as_hooks(value: Any) -> List[Callable[..., Any]]:
    """A hook option as a list: ``None`` none, a list or tuple in order, else the one hook."""
    hooks = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
    for hook in hooks:
        if not callable(hook):
            raise TypeError(f"a hook must be callable, not {hook!r}")
    return hooks


def first_answer(hooks: Iterable[RequestHook], request: Request) -> Optional[Any]:
    """What the first of ``hooks`` that answers ``request`` returns, or ``None`` if none does (exceptions propagate)."""
    for hook in hooks:
        answer = hook(request)
        if answer is not None:
            return answer
    return None


def chain_hooks(*hooks: RequestHook) -> RequestHook:
    """One ``process_request`` hook that tries ``hooks`` in order; the first answer wins.

    Each hook gets the same :class:`~simplews.Request`. The first that returns
    something other than ``None`` (a :class:`~simplews.Response` or a
    ``(status, headers, body)`` tuple) answers the request and the later ones
    are not called; if every hook returns ``None``, so does the chain and the
    upgrade goes on. An exception propagates at once (a server answers 500).
    Order matters: put authentication before a page handler or a
    :class:`~simplews.Router`, so that neither runs for a stranger::

        process_request=chain_hooks(basic_auth("chat", credentials=users), router.process_request)
    """
    chain = tuple(as_hooks(hooks))

    def process_request(request: Request) -> Optional[Any]:
        return first_answer(chain, request)

    return process_request
