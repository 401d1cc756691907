"""Broadcast across processes and machines through Redis pub/sub.

Several simplews servers behind a load balancer each reach only their own
clients. A :class:`RedisBroadcast` joins them: a server publishes what it
broadcasts, and hands what the other servers publish to a
``deliver(message, room)`` callback that broadcasts to its own clients.

One channel, ``{channel_prefix}:broadcast``, carries every publication, the
room inside the envelope, rather than a channel per room. A server's set of
rooms changes with every join and leave; with a channel per room each change
is a SUBSCRIBE or UNSUBSCRIBE that must be acknowledged before that room's
messages arrive (a message sent just after a client joined elsewhere would be
lost), and replayed after every reconnection. With one channel a room works
the moment it exists, and every server sees every publisher's whole sequence,
so a lost publication shows as a gap in it and is counted. The price is that
every server receives the traffic of rooms it has no member in and filters it
(a dictionary lookup); for the handful of processes this serves, that is
cheap. Deployments too big for that shard by ``channel_prefix``.

The envelope (version 1), integers big-endian::

    0   4  b"SWB1"
    4   1  b"t" text (UTF-8 payload) or b"b" binary
    5  16  the publishing instance's id (a UUID)
   21   8  its sequence number, from 1, one per publish() call
   29   2  the room's length in bytes, 0xFFFF for "everyone"
   31   n  the room (UTF-8), then the payload

Threads (daemons, named ``simplews-redis-*``): the *subscriber* reads the
channel and only parses headers: it skips our own publications, counts gaps,
and puts the rest on a bounded hand-off queue, never waiting on it (a full
queue drops the publication and counts it), so a slow ``deliver`` can never
make Redis drop the subscriber for falling behind. The *delivery* thread calls
``deliver`` for each, in order. Publishing runs on the caller's thread.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import logging
import queue
import random
import struct
import threading
import time
import uuid
from typing import Any, Callable, Dict, Optional, Tuple, Union

from .exceptions import InvalidURI, MissingDependency, RedisUnavailable
from .handshake import redact_url
from .rooms import check_room

__all__ = ["RedisBroadcast", "BroadcastStats", "Deliver", "DEFAULT_REDIS_URL"]

logger = logging.getLogger("simplews")

#: ``deliver(message, room)``: a ``str`` (text) or ``bytes`` (binary) another server
#: published; ``room`` is ``None`` for everyone.
Deliver = Callable[[Union[str, bytes], Optional[str]], Any]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_TIMEOUT = 2.0
DEFAULT_MAX_PENDING = 1024
DEFAULT_RECONNECT_DELAY = 0.1
DEFAULT_RECONNECT_MAX_DELAY = 5.0
DEFAULT_HEALTH_CHECK_INTERVAL = 5.0

_MAGIC = b"SWB1"
_HEADER = struct.Struct(">4s1s16sQH")
_NO_ROOM = 0xFFFF
_TEXT, _BINARY = b"t", b"b"
_POLL = 0.2  # how often a quiet subscriber looks at the stop flag
_WARN_INTERVAL = 10.0  # the same warning is logged at most this often
_MAX_PUBLISHERS = 4096  # publishers whose last sequence number is remembered (for gaps)
_STOP = object()

_Handoff = Tuple[bytes, Optional[str], bytes, int]  # kind, room, envelope, payload offset


@dataclasses.dataclass(frozen=True)
class BroadcastStats:
    """What a :class:`RedisBroadcast` did since it started (a snapshot).

    ``published``: our publications Redis took. ``received``: the other
    servers' publications that reached us; of those, ``delivered`` went through
    ``deliver`` and ``errors`` made it raise. ``echoes``: our own publications
    coming back, not delivered again. ``dropped``: publications lost here, ours
    not published (Redis unreachable, too slow, or stopped) and others' that
    found the hand-off queue full (``overflowed``) or were still queued at
    :meth:`~RedisBroadcast.stop`. ``gaps``: the other servers' publications that
    never reached us (holes in their sequence numbers: their outage, or ours).
    ``invalid``: messages on the channel that are not ours to read.
    ``disconnects`` / ``reconnects``: subscriptions lost and restored.
    """

    published: int = 0
    received: int = 0
    delivered: int = 0
    echoes: int = 0
    dropped: int = 0
    overflowed: int = 0
    gaps: int = 0
    invalid: int = 0
    errors: int = 0
    disconnects: int = 0
    reconnects: int = 0


_FIELDS = tuple(field.name for field in dataclasses.fields(BroadcastStats))


class _Counters:
    """Thread-safe counters behind :class:`BroadcastStats`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, int] = dict.fromkeys(_FIELDS, 0)

    def add(self, *names: str, n: int = 1) -> None:
        """Add ``n`` to each of ``names``."""
        with self._lock:
            for name in names:
                self._values[name] += n

    def snapshot(self) -> BroadcastStats:
        """The values now."""
        with self._lock:
            return BroadcastStats(**self._values)


class _Warnings:
    """Warnings logged at most once per interval each, saying how many were held back."""

    def __init__(self, interval: float = _WARN_INTERVAL) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._last: Dict[str, float] = {}
        self._held: Dict[str, int] = collections.Counter()

    def warn(self, key: str, message: str, *args: Any) -> None:
        """Log ``message % args`` unless ``key`` was logged less than ``interval`` ago."""
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.interval:
                self._held[key] += 1
                return
            self._last[key] = now
            held = self._held.pop(key, 0)
        if held:
            message += " (and %d more like this in the last %.0f s)"
            args += (held, self.interval)
        logger.warning(message, *args)


def encode_message(message: Union[str, bytes, bytearray, memoryview], room: Optional[str]) -> Tuple[bytes, bytes, int, bytes]:
    """``(kind, room bytes, room length field, payload)`` for an envelope; raise for bad arguments."""
    if isinstance(message, str):
        kind, payload = _TEXT, message.encode("utf-8")
    elif isinstance(message, (bytes, bytearray, memoryview)):
        kind, payload = _BINARY, bytes(message)
    else:
        raise TypeError(f"a broadcast message is str or bytes-like, not {type(message).__name__}")
    if room is None:
        return kind, b"", _NO_ROOM, payload
    name = check_room(room)
    return kind, name, len(name), payload


def parse_header(data: bytes) -> Tuple[bytes, int, bytes, Optional[str], int]:
    """``(sender, sequence, kind, room, payload offset)`` of an envelope; ``ValueError`` if it is not one."""
    if len(data) < _HEADER.size:
        raise ValueError("too short for an envelope")
    magic, kind, sender, seq, length = _HEADER.unpack_from(data)
    if magic != _MAGIC or kind not in (_TEXT, _BINARY):
        raise ValueError("not a simplews envelope (version 1)")
    if length == _NO_ROOM:
        return sender, seq, kind, None, _HEADER.size
    end = _HEADER.size + length
    if len(data) < end:
        raise ValueError("room name cut short")
    return sender, seq, kind, data[_HEADER.size : end].decode("utf-8"), end


def reconnect_wait(attempt: int, first: float, cap: float) -> float:
    """Seconds before reconnection attempt ``attempt`` (0, 1, ...): doubling from ``first`` up to ``cap``, jittered by 0.5-1.5x."""
    return min(cap, first * 2 ** min(attempt, 32) * random.uniform(0.5, 1.5))


def _import_redis() -> Any:
    """The ``redis`` package, or :class:`MissingDependency` naming the extra."""
    try:
        import redis
        import redis.backoff
        import redis.retry
    except ImportError as exc:
        raise MissingDependency(
            "RedisBroadcast needs the redis package: pip install 'simplews[redis]'", name="redis"
        ) from exc
    return redis


class RedisBroadcast:
    """Broadcast between simplews servers in several processes through one Redis.

    Each server makes one and hands it ``deliver(message, room)``: :meth:`start`
    connects and subscribes, :meth:`publish` sends a message to the other
    servers (never back to this one: the caller delivers it locally itself),
    :meth:`stop` ends it. What the others publish reaches ``deliver`` on the
    ``simplews-redis-delivery`` thread, one at a time, in each publisher's
    order; ``deliver`` sends to local clients only (never :meth:`publish`
    from it: the servers would echo each other forever), should return within
    a few seconds (a local broadcast does: it is bounded by its timeout), and
    what it raises is logged and counted, never propagated.

    Guarantees: text stays text and binary binary; each publisher's order is
    kept; at most once (nothing is retried, a server skips its own
    publications). Faults never raise into the caller after :meth:`start`:
    during an outage :meth:`publish` returns ``False`` and counts the
    publication as dropped; the subscriber reconnects after ``reconnect_delay``
    seconds doubling up to ``reconnect_max_delay`` (jittered by 0.5-1.5x) and
    subscribes again. Every network operation is bounded by ``timeout`` (socket
    timeouts), and a subscription quiet for ``health_check_interval`` seconds is
    probed with a PING, so a Redis that hangs rather than dies is noticed too.
    Losing the subscription is logged and counted, whatever the cause (Redis
    restarted, or it dropped us for falling behind: ``client-output-buffer-limit
    pubsub``). Warnings are logged at most every 10 s per kind. ``max_pending``
    bounds the hand-off queue to ``deliver``. Counters: :attr:`stats`.
    """

    def __init__(
        self,
        url: str = DEFAULT_REDIS_URL,
        *,
        channel_prefix: str = "simplews",
        timeout: float = DEFAULT_TIMEOUT,
        max_pending: int = DEFAULT_MAX_PENDING,
        reconnect_delay: float = DEFAULT_RECONNECT_DELAY,
        reconnect_max_delay: float = DEFAULT_RECONNECT_MAX_DELAY,
        health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL,
    ) -> None:
        self._redis = _import_redis()
        if timeout <= 0 or health_check_interval <= 0 or max_pending < 1 or not 0 <= reconnect_delay <= reconnect_max_delay:
            raise ValueError(
                "timeout > 0, health_check_interval > 0, max_pending >= 1 and 0 <= reconnect_delay <= reconnect_max_delay are required"
            )
        #: the Redis URL as logs and errors show it (password masked)
        self.url = redact_url(url)
        #: the one channel every publication goes through
        self.channel = f"{channel_prefix}:broadcast"
        self.timeout = timeout
        self.reconnect_delay = reconnect_delay
        self.reconnect_max_delay = reconnect_max_delay
        self.health_check_interval = health_check_interval
        self._id = uuid.uuid4().bytes
        try:
            self._pool = self._redis.ConnectionPool.from_url(
                url,
                socket_timeout=timeout,
                socket_connect_timeout=timeout,
                socket_keepalive=True,
                protocol=2,  # RESP2: publications are plain replies, never routed to push handlers
                retry=self._redis.retry.Retry(self._redis.backoff.NoBackoff(), 0),  # we decide when to retry
                client_name=f"simplews-{self._id.hex()[:8]}",
            )
        except ValueError as exc:
            raise InvalidURI(f"not a Redis URL: {self.url}: {exc}") from exc
        self._counts = _Counters()
        self._warnings = _Warnings()
        self._seq = itertools.count(1)
        self._last_seq: collections.OrderedDict[bytes, int] = collections.OrderedDict()
        self._handoff: queue.Queue[Any] = queue.Queue(max_pending)
        self._publish_lock = threading.Lock()
        self._publisher: Any = None
        self._publish_failures = 0
        self._down_until = 0.0  # publish() drops at once until then (after a failure)
        self._deliver: Optional[Deliver] = None
        self._started = False
        self._running = False
        self._connected = False
        self._stopping = threading.Event()
        self._threads: Tuple[threading.Thread, ...] = ()

    def __repr__(self) -> str:
        state = "running" if self._running else ("stopped" if self._started else "not started")
        return f"<RedisBroadcast {self.url} channel={self.channel!r} {state}>"

    @property
    def instance_id(self) -> str:
        """This instance's id in every envelope it publishes (a UUID, in hex)."""
        return self._id.hex()

    @property
    def stats(self) -> BroadcastStats:
        """The counters now (see :class:`BroadcastStats`)."""
        return self._counts.snapshot()

    @property
    def connected(self) -> bool:
        """Whether the subscription to Redis is up at the moment."""
        return self._connected

    # --- life cycle -----------------------------------------------------------------------

    def start(self, deliver: Deliver) -> None:
        """Connect, subscribe, and start handing the other servers' publications to ``deliver``.

        When this returns, publications of the other servers reach ``deliver``.
        Raises :class:`~simplews.RedisUnavailable` (with the URL, password
        masked) when Redis cannot be reached or refuses us (e.g. a wrong password),
        ``RuntimeError`` when called twice.
        """
        if not callable(deliver):
            raise TypeError("deliver must be callable: deliver(message, room)")
        if self._started:
            raise RuntimeError("a RedisBroadcast starts once; make a new one")
        self._started = True
        self._deliver = deliver
        try:
            self._publisher = self._pool.make_connection()
            self._publisher.connect()
            subscriber = self._subscribe()
        except (self._redis.RedisError, OSError) as exc:
            self._close_connections()
            refused = isinstance(exc, (self._redis.AuthenticationError, self._redis.ResponseError))
            raise RedisUnavailable(f"{'Redis refused us at' if refused else 'cannot reach Redis at'} {self.url}: {exc}") from exc
        self._running = True
        self._threads = (
            threading.Thread(target=self._run_subscriber, args=(subscriber,), name="simplews-redis-subscriber", daemon=True),
            threading.Thread(target=self._run_delivery, name="simplews-redis-delivery", daemon=True),
        )
        for thread in self._threads:
            thread.start()
        logger.info("broadcasting through Redis at %s, channel %s", self.url, self.channel)

    def stop(self, timeout: float = 5.0) -> None:
        """Unsubscribe, end both threads and close the connections, within about ``timeout`` seconds.

        Publications still waiting for ``deliver`` are dropped (and counted).
        Safe to call more than once, before :meth:`start`, and from ``deliver``.
        """
        if not self._running:
            return
        self._running = False
        deadline = time.monotonic() + timeout
        self._stopping.set()
        subscriber, delivery = self._threads
        subscriber.join(max(0.0, deadline - time.monotonic()))
        self._end_delivery()
        if threading.current_thread() is not delivery:  # stop() from deliver(): that thread ends after it returns
            delivery.join(max(0.0, deadline - time.monotonic()))
        locked = self._publish_lock.acquire(timeout=max(0.0, deadline - time.monotonic()))
        try:
            self._close_connections()
        finally:
            if locked:
                self._publish_lock.release()
        late = [thread.name for thread in self._threads if thread.is_alive() and thread is not threading.current_thread()]
        if late:
            logger.warning("RedisBroadcast: %s still running after %.1f s", ", ".join(late), timeout)

    def _end_delivery(self) -> None:
        """Drop what waits in the hand-off queue and tell the delivery thread to end."""
        dropped = 0
        while True:
            try:
                while True:
                    self._handoff.get_nowait()
                    dropped += 1
            except queue.Empty:
                pass
            try:
                self._handoff.put_nowait(_STOP)
                break
            except queue.Full:  # a subscriber that has not ended yet filled it again
                continue
        if dropped:
            self._counts.add("dropped", n=dropped)

    def _close_connections(self) -> None:
        if self._publisher is not None:
            self._publisher.disconnect()
        self._pool.disconnect()

    # --- publishing -------------------------------------------------------------------------

    def publish(self, message: Union[str, bytes, bytearray, memoryview], room: Optional[str] = None) -> bool:
        """Send ``message`` (text for ``str``, binary for bytes-like) to the other servers' ``room`` (``None``: everyone).

        Returns whether Redis took it. Never raises for Redis faults and never
        waits longer than about three times ``timeout`` (for another thread's
        publication, then to connect and to publish): a publication that cannot
        be made (Redis unreachable or hung, :meth:`start` not called or
        :meth:`stop` called) is dropped, counted, and logged as a warning.
        Right after a failure, publications are dropped at once until the next
        attempt is due (the same backoff as the subscriber's), so an outage
        does not slow every caller down by ``timeout``. ``TypeError`` /
        ``ValueError`` for a message or room of the wrong kind.
        """
        kind, name, length, payload = encode_message(message, room)
        if not self._running:
            return self._drop("stopped", "publish() %s: publication dropped", "after stop()" if self._started else "before start()")
        if threading.current_thread() in self._threads:
            # deliver() must send to local clients only: publishing from it, the servers would echo each other forever
            return self._drop("echo", "publish() called from deliver(): publication dropped (deliver to local clients only)")
        if time.monotonic() < self._down_until:
            return self._drop("down", "Redis at %s is unreachable: publication dropped", self.url)
        if not self._publish_lock.acquire(timeout=self.timeout):
            return self._drop("slow", "Redis at %s is too slow: publication dropped", self.url)
        try:
            if time.monotonic() < self._down_until or not self._running:
                return self._drop("down", "Redis at %s is unreachable: publication dropped", self.url)
            seq = next(self._seq)  # taken under the lock: sequence numbers follow the order of sending
            envelope = b"".join((_HEADER.pack(_MAGIC, kind, self._id, seq, length), name, payload))
            try:
                self._drop_if_closed(self._publisher)
                self._publisher.send_command("PUBLISH", self.channel, envelope)
                self._publisher.read_response()
            except (self._redis.RedisError, OSError) as exc:
                self._publisher.disconnect()
                self._down_until = time.monotonic() + reconnect_wait(
                    self._publish_failures, self.reconnect_delay, self.reconnect_max_delay
                )
                self._publish_failures += 1
                return self._drop("failed", "publishing to Redis at %s failed (%s): publication dropped", self.url, exc, seq=seq)
            self._publish_failures = 0
        finally:
            self._publish_lock.release()
        self._counts.add("published")
        return True

    def _drop_if_closed(self, conn: Any) -> None:
        """Disconnect an idle connection that Redis closed meanwhile (restarted, idle ``timeout``, CLIENT KILL).

        Checked before sending, so the next command goes out on a new connection: a
        failure after sending could not be retried without risking a duplicate.
        """
        if getattr(conn, "_sock", None) is None:
            return
        try:
            stale = conn.can_read(timeout=0)  # nothing is owed to us: readable means closed
        except (self._redis.RedisError, OSError):
            stale = True
        if stale:
            conn.disconnect()

    def _drop(self, key: str, message: str, *args: Any, seq: Optional[int] = None) -> bool:
        """Count one of our publications as dropped and warn; its sequence number becomes a gap for the others."""
        if seq is None:
            next(self._seq)
        self._counts.add("dropped")
        self._warnings.warn(key, message, *args)
        return False

    # --- subscribing ------------------------------------------------------------------------

    def _subscribe(self) -> Any:
        """A new connection subscribed to the channel (confirmed by Redis)."""
        conn = self._pool.make_connection()
        try:
            conn.connect()
            conn.send_command("SUBSCRIBE", self.channel)
            reply = conn.read_response()
            if not (isinstance(reply, list) and reply and reply[0] == b"subscribe"):
                raise self._redis.ResponseError(f"unexpected answer to SUBSCRIBE: {reply!r}")
        except BaseException:
            conn.disconnect()
            raise
        self._down_until = 0.0  # Redis is back: publish() tries at once (before connected says so)
        self._connected = True
        return conn

    def _run_subscriber(self, conn: Any) -> None:
        """The subscriber thread: read the channel; on a lost connection, warn, back off, subscribe again."""
        attempt = 0
        lost_at = 0.0
        try:
            while not self._stopping.is_set():
                if conn is None:
                    if self._stopping.wait(reconnect_wait(attempt, self.reconnect_delay, self.reconnect_max_delay)):
                        break
                    attempt += 1
                    try:
                        conn = self._subscribe()
                    except (self._redis.RedisError, OSError) as exc:
                        self._warnings.warn("resubscribe", "Redis at %s still unreachable (%s): retrying", self.url, exc)
                        continue
                    self._counts.add("reconnects")
                    logger.warning("subscribed to Redis at %s again after %.1f s", self.url, time.monotonic() - lost_at)
                    attempt = 0
                try:
                    self._read(conn)
                except (self._redis.RedisError, OSError) as exc:
                    self._connected = False
                    conn.disconnect()
                    conn = None
                    lost_at = time.monotonic()
                    self._counts.add("disconnects")
                    self._warnings.warn(
                        "lost",
                        "lost the subscription to Redis at %s (%s): publications of other servers are missed until it is back; "
                        "if Redis dropped us for falling behind, see its client-output-buffer-limit pubsub",
                        self.url,
                        exc,
                    )
        finally:
            self._connected = False
            if conn is not None:
                conn.disconnect()

    def _read(self, conn: Any) -> None:
        """Read publications until asked to stop; raise when the connection fails or Redis stops answering."""
        heard = time.monotonic()
        pinged: Optional[float] = None
        while not self._stopping.is_set():
            if conn.can_read(timeout=_POLL):
                reply = conn.read_response()
                heard, pinged = time.monotonic(), None
                if isinstance(reply, list) and len(reply) == 3 and reply[0] == b"message":
                    self._on_publication(reply[2])
                continue
            now = time.monotonic()
            if pinged is not None:
                if now - pinged > self.timeout:
                    raise self._redis.TimeoutError(f"no answer to PING within {self.timeout} s")
            elif now - heard >= self.health_check_interval:
                conn.send_command("PING")
                pinged = now

    def _on_publication(self, data: Any) -> None:
        """Skip ours, count gaps, and hand the rest to the delivery thread without waiting."""
        try:
            sender, seq, kind, room, offset = parse_header(data)
        except (ValueError, TypeError) as exc:
            self._counts.add("invalid")
            self._warnings.warn("invalid", "ignored a message on %s that is not a simplews envelope (%s)", self.channel, exc)
            return
        if sender == self._id:
            self._counts.add("echoes")
            return
        self._track_sequence(sender, seq)
        self._counts.add("received")
        try:
            self._handoff.put_nowait((kind, room, data, offset))
        except queue.Full:
            self._counts.add("dropped", "overflowed")
            self._warnings.warn(
                "overflow",
                "deliver() is too slow: %d publications wait for it, one from another server dropped",
                self._handoff.maxsize,
            )

    def _track_sequence(self, sender: bytes, seq: int) -> None:
        """Count the publications of ``sender`` missing before ``seq``."""
        last = self._last_seq.get(sender)
        if last is not None and seq > last + 1:
            missed = seq - last - 1
            self._counts.add("gaps", n=missed)
            self._warnings.warn("gap", "missed %d publication(s) of server %s", missed, sender.hex()[:8])
        if last is None or seq > last:
            self._last_seq[sender] = seq
            self._last_seq.move_to_end(sender)
            if len(self._last_seq) > _MAX_PUBLISHERS:
                self._last_seq.popitem(last=False)

    # --- delivering -------------------------------------------------------------------------

    def _run_delivery(self) -> None:
        """The delivery thread: ``deliver`` each handed-off publication, in order."""
        deliver = self._deliver
        assert deliver is not None
        while True:
            item: Union[_Handoff, object] = self._handoff.get()
            if item is _STOP:
                return
            kind, room, data, offset = item  # type: ignore[misc]
            message: Union[str, bytes]
            if kind == _BINARY:
                message = data[offset:]
            else:
                try:
                    message = str(memoryview(data)[offset:], "utf-8")
                except UnicodeDecodeError:
                    self._counts.add("invalid")
                    self._warnings.warn("invalid", "ignored a text publication that is not UTF-8")
                    continue
            try:
                deliver(message, room)
            except Exception:
                self._counts.add("errors")
                logger.exception("deliver() raised for a publication from another server")
            else:
                self._counts.add("delivered")
