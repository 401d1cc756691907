"""Emulate Windows' socket layer on a POSIX system: put this directory first on PYTHONPATH.

What Windows lacks is removed before any test code runs: ``select.poll``,
``epoll``, ``kqueue``, ``devpoll`` (and their selectors), ``MSG_DONTWAIT`` and
``MSG_NOSIGNAL``, ``socket.sendmsg``/``recvmsg``, ``AF_UNIX``, the POSIX-only
signals. ``selectors.DefaultSelector`` becomes a select() selector that refuses
more than 512 sockets, and ``socket.socketpair`` the loopback-TCP version
Windows uses. ``SIMPLEWS_EMULATED=windows`` marks the process (and, through the
environment, its children) as emulated.
"""

from __future__ import annotations

import os
import select
import selectors
import signal
import socket
from typing import Tuple

from winselect import LimitedSelectSelector


class _Missing:
    """A class attribute that is not there: ``hasattr`` is false on the class and its instances."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, obj: object, owner: object = None) -> None:
        raise AttributeError(f"socket has no attribute {self.name!r} on Windows")


def _socketpair(family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> Tuple[socket.socket, socket.socket]:
    """Windows' socketpair(): two TCP sockets connected over loopback."""
    with socket.socket(family, type, proto) as listener:
        listener.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        listener.listen(1)
        client = socket.socket(family, type, proto)
        try:
            client.connect(listener.getsockname()[:2])
            server, _ = listener.accept()
        except BaseException:
            client.close()
            raise
    return server, client


def _remove(module: object, names: str) -> None:
    for name in names.split():
        if hasattr(module, name):
            delattr(module, name)


_remove(select, "poll epoll kqueue kevent devpoll")
_remove(selectors, "PollSelector EpollSelector KqueueSelector DevpollSelector")
_remove(socket, "AF_UNIX MSG_DONTWAIT MSG_NOSIGNAL SO_REUSEPORT")
_remove(signal, "SIGPIPE SIGHUP SIGALRM SIGUSR1 SIGUSR2")
for _name in ("sendmsg", "recvmsg", "recvmsg_into", "sendmsg_afalg"):
    setattr(socket.socket, _name, _Missing(_name))
socket.socketpair = _socketpair
selectors.SelectSelector = LimitedSelectSelector  # type: ignore[misc]
selectors.DefaultSelector = LimitedSelectSelector  # type: ignore[misc]
os.environ["SIMPLEWS_EMULATED"] = "windows"
