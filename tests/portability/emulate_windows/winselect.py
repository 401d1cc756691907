"""A ``select()`` selector with Windows' limit, usable on any POSIX system (no side effects on import).

CPython on Windows builds ``select`` with ``FD_SETSIZE`` 512: a call with more
than 512 sockets in one set raises ``ValueError("too many file descriptors in
select()")``, whatever the sockets' numbers. :class:`LimitedSelectSelector` has
that limit and nothing else of POSIX ``select()`` (whose limit is a descriptor
*number* below 1024, which a test holding many sockets would hit first): it
waits with ``poll``, taken here before the Windows emulation removes it.
"""

from __future__ import annotations

import errno
import math
import select
import selectors
from typing import Any, List, Optional, Set, Tuple

__all__ = ["LIMIT", "LimitedSelectSelector"]

#: sockets per set in one select() call on Windows (CPython's FD_SETSIZE there)
LIMIT = 512

_poll = select.poll
_IN, _OUT = select.POLLIN, select.POLLOUT
_BAD = select.POLLERR | select.POLLHUP
_NVAL = select.POLLNVAL


class LimitedSelectSelector(selectors.SelectSelector):
    """``selectors.SelectSelector`` as on Windows: more than 512 sockets in one call is a ``ValueError``."""

    #: calls refused for holding too many sockets (a test reads it)
    refused = 0

    def _select(self, r: Set[int], w: Set[int], _: Any, timeout: Optional[float] = None) -> Tuple[List[int], List[int], List[int]]:
        if len(r) > LIMIT or len(w) > LIMIT:
            type(self).refused += 1
            raise ValueError("too many file descriptors in select()")
        if not r and not w:  # Windows' select() refuses empty sets (WSAEINVAL)
            raise OSError(errno.EINVAL, "select() with no sockets")
        poller = _poll()
        for fd in r | w:
            poller.register(fd, (_IN if fd in r else 0) | (_OUT if fd in w else 0))
        ms = None if timeout is None else math.ceil(max(timeout, 0.0) * 1000)
        readable: List[int] = []
        writable: List[int] = []
        for fd, revents in poller.poll(ms):
            if revents & _NVAL:  # a closed descriptor: select() fails for the whole call
                raise OSError(errno.EBADF, "Bad file descriptor")
            if fd in r and revents & (_IN | _BAD):
                readable.append(fd)
            if fd in w and revents & (_OUT | _BAD):
                writable.append(fd)
        return readable, writable, []
