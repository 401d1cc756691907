"""How callback exceptions are reported (handlers.run_connection's helpers)."""

from __future__ import annotations

import logging
import types
from typing import Any, List

import pytest

from simplews.exceptions import ConnectionClosedError
from simplews.handlers import Handler, _report, resolve_handler


def test_send_on_closed_connection_is_logged_quietly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="simplews"):
        ws = types.SimpleNamespace(logger=logging.getLogger("simplews"))  # what _report uses of a connection
        _report(Handler(), ws, ConnectionClosedError(1006, ""))  # type: ignore[arg-type]
        _report(Handler(), ws, RuntimeError("bug"))  # type: ignore[arg-type]
    levels = [(r.levelno, r.exc_info is not None) for r in caplog.records]
    assert levels == [(logging.DEBUG, False), (logging.ERROR, True)]


def test_errors_go_to_on_error_when_given() -> None:
    seen: List[Any] = []
    _report(Handler(on_error=lambda ws, exc: seen.append((ws, exc))), "ws", ValueError("x"))  # type: ignore[arg-type]
    assert len(seen) == 1 and isinstance(seen[0][1], ValueError)


def test_handler_styles_resolve() -> None:
    def func(ws: Any) -> None:
        pass

    assert resolve_handler(func)().func is func
    with pytest.raises(TypeError):
        resolve_handler(func, on_message=lambda ws, m: None)
    with pytest.raises(TypeError):
        resolve_handler(42)
