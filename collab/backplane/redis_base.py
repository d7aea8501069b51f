"""What the single-node and the cluster Redis backplanes share.

Both keep the handlers, the resubscribed callbacks and a bounded outbound
queue; both start by waiting (bounded) for a first outcome so that a
misconfiguration is in the start-up log; both report a failure the same
way: the cause in plain words (:func:`~collab.backplane.redis_options.explain`),
the ``redis`` and ``redis_subscriber`` health components failing, a counted
event, and a reconnect after an exponential, fully jittered delay
(:func:`~collab.backoff.backoff_delay`). Only the way they hold their
connections differs: one pool and one pub/sub connection (``redis.py``), or
one SSUBSCRIBE connection per shard primary (``redis_cluster.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.exceptions import RedisError, ResponseError

from ..backoff import backoff_delay
from ..errors import BackplaneError
from ..observability.health import Health
from ..tasks import TaskSet
from . import redis_blobs as blobs
from .base import Handler, ResubscribedCallback
from .redis_options import RedisOptions, explain

# Components in /readyz: the link (connect, TLS, AUTH, publish) and the listener.
LINK = "redis"
SUBSCRIBER = "redis_subscriber"

MAX_QUEUE = 10_000
MAX_BATCH = 256
# A connection that stayed up this long resets the backoff.
STABLE_AFTER = 1.0


class QueuedRedisBackplane:
    """Handlers, callbacks, the outbound queue and failure reporting; the
    subclass supplies ``_supervise()`` (its connection cycles)."""

    name = "redis"

    def __init__(
        self,
        options: RedisOptions,
        log: logging.Logger,
        *,
        health: Health | None = None,
        events: Callable[[str, int], None] | None = None,
    ) -> None:
        self.options = options
        self.health = health if health is not None else Health()
        self._log = log
        self._events = events
        self._handlers: dict[str, Handler] = {}
        self._callbacks: list[ResubscribedCallback] = []
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._sub_lock = asyncio.Lock()
        self._connected = False
        self._supervisor: asyncio.Task[None] | None = None
        self._first_outcome = asyncio.Event()
        self._drained = asyncio.Event()
        self._dropped = 0
        self._overflowed = False
        self._resync_tasks: set[asyncio.Task[None]] = set()
        self._fetches = TaskSet(f"{self.name} backplane fetches")
        self.connects = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._connected

    def _count(self, event: str, n: int = 1) -> None:
        if self._events is not None:
            self._events(event, n)

    async def _supervise(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        return self.options.describe()

    async def start(self) -> None:
        """Start connecting; wait (bounded) for the first outcome so that a
        misconfiguration is in the start-up log; never raise for it."""
        for name in (LINK, SUBSCRIBER):
            self.health.set_pending(name, "connecting", url=self.options.safe_url)
        self._log.info("%s backplane: connecting to %s", self.name, self.describe())
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name=f"{self.name}-backplane"
        )
        wait = 2 * self.options.socket_timeout + 1
        try:
            await asyncio.wait_for(self._first_outcome.wait(), wait)
        except TimeoutError:
            self._log.error(
                "%s backplane: no answer from %s within %.0f s at start-up; "
                "serving local rooms only until it answers",
                self.name,
                self.options.safe_url,
                wait,
            )

    async def _drain_and_cancel(self) -> None:
        """The first half of ``stop()``: let the last local edits out
        (bounded), then end the supervisor."""
        if self._connected and self._queue:
            self._drained.clear()
            self._wake.set()
            try:
                await asyncio.wait_for(self._drained.wait(), self.options.socket_timeout)
            except TimeoutError:
                self._log.warning(
                    "%s backplane: %d messages not published at shutdown",
                    self.name,
                    len(self._queue),
                )
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
            self._supervisor = None
        for task in list(self._resync_tasks):
            task.cancel()
        await self._fetches.aclose()

    def publish(self, channel: str, payload: bytes) -> None:
        if not self._connected:
            # Anti-entropy after the reconnect carries it; count it, log once per outage.
            if self._dropped == 0:
                self._log.warning(
                    "%s backplane down (%s): publishing suspended, local editing "
                    "continues; anti-entropy will resend on reconnect",
                    self.name,
                    self.last_error,
                )
            self._dropped += 1
            self._count("dropped")
            return
        if len(self._queue) >= MAX_QUEUE:
            if not self._overflowed:
                self._log.error(
                    "%s backplane: outbound queue full (%d); dropping, a resync "
                    "follows once it drains",
                    self.name,
                    MAX_QUEUE,
                )
            self._overflowed = True
            self._count("dropped")
            return
        self._queue.append((channel, payload))
        self._wake.set()

    def add_resubscribed_callback(self, callback: ResubscribedCallback) -> None:
        self._callbacks.append(callback)

    async def _next_batch(self) -> list[tuple[str, bytes]]:
        """Wait for queued messages and take up to MAX_BATCH of them; a queue
        that overflowed triggers a resync once drained."""
        queue = self._queue
        while not queue:
            self._drained.set()
            if self._overflowed:
                self._overflowed = False
                self._spawn_resync()
            await self._wake.wait()
            self._wake.clear()
        return [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]

    async def _stage_large(
        self, client: Any, batch: list[tuple[str, bytes]]
    ) -> list[tuple[str, bytes]]:
        """The batch to publish: a payload too large for pub/sub is SET under
        a key first (its own round trip, so a refusal names no payload bytes)
        and replaced by a pointer (see redis_blobs). It is skipped when
        nobody else listens (anti-entropy answers a late joiner), and when
        Redis refuses the key (logged: the ACL needs keys under the prefix)."""
        out: list[tuple[str, bytes]] = []
        for channel, payload in batch:
            if len(payload) <= self.options.max_message_bytes:
                out.append((channel, payload))
                continue
            self._count("large")
            if await self._listeners(client, channel) <= 1:  # ourselves only
                continue
            key = blobs.new_key(channel)
            try:
                await client.set(key, payload, px=blobs.BLOB_TTL_MS)
            except ResponseError as exc:  # NOPERM, OOM: the link itself is fine
                self._count("dropped")
                self._log.error(
                    "%s backplane: a %d-byte message on %r was not sent: Redis "
                    "refused its key (%s); the Redis user needs +set +get on "
                    "~%s:* (README, Running several instances)",
                    self.name,
                    len(payload),
                    channel,
                    exc,
                    self.options.namespace,
                )
                continue
            out.append((channel, blobs.pointer(key)))
        return out

    async def _listeners(self, client: Any, channel: str) -> int:
        """How many subscribers ``channel`` has (ours included); a backend
        that cannot tell cheaply says 2, i.e. someone else may be there."""
        return 2

    async def _get(self, key: str) -> bytes | None:
        """GET a large message's key (the subclass knows where it lives)."""
        raise NotImplementedError

    async def _fetch(self, channel: str, key: str) -> None:
        try:
            data = await self._get(key)
        except (RedisError, OSError, TimeoutError, BackplaneError) as exc:
            self._log.error(
                "%s backplane: cannot read a large message on %r (%s); resyncing",
                self.name,
                channel,
                explain(exc, self.options),
            )
            self._spawn_resync()
            return
        if data is None:
            self._log.error(
                "%s backplane: a large message on %r expired before it was read; resyncing",
                self.name,
                channel,
            )
            self._spawn_resync()
            return
        self._hand_over(channel, data)

    def _deliver(self, channel: str, data: bytes) -> None:
        key = blobs.pointed_key(data)
        if key is not None:
            if channel in self._handlers:
                self._fetches.spawn(self._fetch(channel, key), name=f"fetch {key}")
            return
        self._hand_over(channel, data)

    def _hand_over(self, channel: str, data: bytes) -> None:
        handler = self._handlers.get(channel)
        if handler is None:
            return  # unsubscribed meanwhile
        self._count("receive")
        try:
            handler(data)
        except Exception:
            # A handler bug must not take the link down for every room; it is loud.
            self._count("error")
            self._log.exception("%s backplane: handler for %r failed", self.name, channel)

    def _spawn_resync(self) -> None:
        for callback in list(self._callbacks):
            task = asyncio.get_running_loop().create_task(self._run_callback(callback))
            self._resync_tasks.add(task)
            task.add_done_callback(self._resync_tasks.discard)

    async def _run_callback(self, callback: ResubscribedCallback) -> None:
        try:
            await callback()
        except Exception:
            self._count("error")
            self._log.exception(
                "%s backplane: resubscribed callback %r failed", self.name, callback
            )

    def _failed(
        self,
        cause: str,
        attempt: int,
        *,
        was_connected: bool,
        components: tuple[str, ...] = (LINK, SUBSCRIBER),
    ) -> float:
        """Report a failure everywhere it must show; return the backoff delay
        before attempt ``attempt + 1``."""
        self.last_error = cause
        self._count("error")
        lost = len(self._queue)
        self._queue.clear()
        self._dropped += lost
        delay = backoff_delay(attempt, self.options.backoff_base, self.options.backoff_cap)
        for name in components:
            self.health.set_failing(
                name,
                cause,
                url=self.options.safe_url,
                attempt=attempt + 1,
                retry_in=round(delay, 3),
            )
        self._log.error(
            "%s backplane: %s; %s; reconnect attempt %d in %.2f s",
            self.name,
            cause,
            "link lost" if was_connected else "cannot connect",
            attempt + 1,
            delay,
        )
        self._first_outcome.set()
        return delay


def channel_name(raw: bytes | str) -> str:
    return raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
