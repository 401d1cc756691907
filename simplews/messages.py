"""What a connection offers on top of ``send()`` and ``recv()``: decode choices, JSON, streaming in, pings.

The connection validates every text message as UTF-8 when it arrives (RFC
6455 8.1), whatever the caller asks for later; decode choices only change
the type the caller gets.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, Iterator, Optional, Union

from .exceptions import ConnectionClosedOK, InvalidMessage
from .pings import Pings, PingWaiter, wake
from .streaming import fragments

if TYPE_CHECKING:  # pragma: no cover
    from .liveness import Liveness
    from .options import ConnectionOptions
    from .protocol import Protocol
    from .reader import Reader
    from .stream import Stream
    from .writer import Writer

__all__ = ["Messages", "convert", "dumps", "loads"]


def convert(message: Union[str, bytes], decode: Optional[bool]) -> Union[str, bytes]:
    """``message`` as asked: ``None`` as it came, ``True`` as ``str``, ``False`` as ``bytes``.

    Binary data that is not UTF-8 raises :class:`~simplews.InvalidMessage` with ``decode=True``.
    """
    if decode is None:
        return message
    if decode:
        if isinstance(message, str):
            return message
        try:
            return message.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidMessage(f"binary message is not UTF-8 ({exc.reason} at byte {exc.start})", message) from None
    return message.encode("utf-8") if isinstance(message, str) else message


def dumps(obj: Any, **options: Any) -> str:
    """``obj`` as JSON text (``options`` go to ``json.dumps()``); ``TypeError`` names what cannot be encoded."""
    try:
        return json.dumps(obj, **options)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"send_json(): {exc}") from None


def loads(message: Union[str, bytes]) -> Any:
    """The value of a JSON text message; :class:`~simplews.InvalidMessage` for binary or invalid JSON."""
    if not isinstance(message, str):
        raise InvalidMessage(f"expected a JSON text message, got a binary message of {len(message)} bytes", message)
    try:
        return json.loads(message)
    except ValueError as exc:
        shown = message if len(message) <= 60 else message[:57] + "..."
        raise InvalidMessage(f"text message is not JSON ({exc}): {shown!r}", message) from None


class Messages:
    """What a :class:`~simplews.Connection` offers beyond ``send()`` and ``recv()``: JSON, iteration, streaming in, pings."""

    options: ConnectionOptions
    stream: Stream
    protocol: Protocol
    _reader: Reader
    _writer: Writer
    _pings: Pings
    _liveness: Liveness
    _state_lock: Any
    _closed: Any
    logger: Any

    if TYPE_CHECKING:  # pragma: no cover - the connection's own

        def send(self, message: Any, *, timeout: Optional[float] = None) -> None: ...

        def recv(self, timeout: Optional[float] = None) -> Union[str, bytes]: ...

        def _watch_now(self) -> None: ...

        def _terminate(self) -> None: ...

    def recv_streaming(
        self, timeout: Optional[float] = None, *, max_size: Optional[int] = -1, decode: Optional[bool] = None
    ) -> Iterator[Union[str, bytes]]:
        """Iterate over the fragments of the next message as they arrive, without holding it whole.

        Text comes as ``str`` pieces cut on character boundaries (UTF-8 still
        validated). A message that arrived while nobody received (read ahead
        whole, within ``max_message_size``) comes as one piece: to stream a
        message larger than that, be receiving before it comes. ``max_size``
        bounds this message alone (``-1``, the default: ``max_message_size``;
        ``None``: no limit; ``max_fragments`` does not apply); ``timeout``
        bounds the wait for each fragment. Stopping early drops the rest of
        the message. Meanwhile no other thread should receive on the connection.
        """
        limit = self.options.max_message_size if max_size == -1 else max_size
        yielded = False
        for fragment in fragments(self._reader, limit, timeout):
            if yielded and not fragment.data:
                continue  # the empty last frame after the pieces
            yielded = True
            yield fragment.data if decode is None else convert(fragment.data, decode)

    def send_json(self, obj: Any, *, timeout: Optional[float] = None, **options: Any) -> None:
        """Send ``obj`` as a JSON text message (``options`` go to ``json.dumps()``)."""
        self.send(dumps(obj, **options), timeout=timeout)

    def recv_json(self, timeout: Optional[float] = None) -> Any:
        """Receive a JSON text message and return its value (:class:`~simplews.InvalidMessage` otherwise)."""
        return loads(self.recv(timeout))

    @property
    def buffered_amount(self) -> int:
        """How many bytes of what was sent the kernel has not taken yet (they go out as the peer reads)."""
        return self.stream.owed

    def __iter__(self) -> Iterator[Union[str, bytes]]:
        """Iterate over incoming messages; ends on a normal close, raises on an error."""
        while True:
            try:
                yield self.recv()
            except ConnectionClosedOK:
                return

    def ping(self, data: Optional[Union[str, bytes]] = None) -> PingWaiter:
        """Send a ping; ``ping().wait(timeout)`` returns the round-trip time in seconds when the pong comes.

        ``wait()`` returns ``None`` on timeout and raises :class:`ConnectionClosed`
        if the connection ends first. A pong answers its ping and every earlier one.
        """
        payload = os.urandom(4) if data is None else (data.encode() if isinstance(data, str) else bytes(data))
        waiter = PingWaiter(self.protocol.closed_exception)
        with self._state_lock:
            self.protocol.send_ping(payload)
            self._pings.sent(payload, waiter)
        self._writer.flush()
        self._watch_now()
        return waiter

    @property
    def latency(self) -> Optional[float]:
        """The round-trip time in seconds of the last ping answered (keepalive or :meth:`ping`), ``None`` before."""
        return self._pings.latency

    def _got_pong(self, payload: bytes) -> None:
        """Resolve the ping this pong answers (and every earlier one)."""
        with self._state_lock:
            self._liveness.ponged(payload)
            woken = self._pings.ponged(payload)
        wake(woken)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Block until the connection is closed (closing handshake done, or transport gone); ``False`` on timeout.

        Safe from any thread; it closes nothing itself (see :meth:`close`).
        """
        return self._closed.wait(timeout)

    def abort(self) -> None:
        """Drop the TCP connection now, without a closing handshake (``close_code`` is then 1006)."""
        if not self._closed.done:
            self.logger.debug("%r: aborted", self)
            self._terminate()
