"""The Redis backplane: pub/sub over redis-py asyncio, TLS + AUTH, never silent.

One connection cycle = a fresh connection pool, a PING (TLS handshake and
AUTH happen here, so a misconfiguration fails here with its real cause), one
pub/sub connection subscribed to every channel, and three tasks: the listener
(one loop fanning out to the handlers), a watchdog PING (a SIGSTOPped Redis
keeps TCP open and answers nothing; only a missing PONG tells), and the
publisher (drains the outbound queue in pipelines). Whichever fails first
ends the cycle; the supervisor logs the cause, marks health failing, waits
(exponential backoff, full jitter, a cap) and starts a new cycle. After each
successful (re)subscribe the resubscribed callbacks run: messages published
while the link was down are gone, anti-entropy recovers them.

Messages published while the link is down are dropped and counted, never
queued without bound and never raised into the room: local editing goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import RedisError

from ..backoff import backoff_delay
from ..config import RedisSettings
from ..errors import BackplaneError
from ..observability.health import Health
from ..observability.metrics import Metrics
from ..tasks import TaskSet
from . import redis_blobs as blobs
from .base import Handler, ResubscribedCallback
from .redis_cycle import Cycle
from .redis_options import RedisOptions, explain

log = logging.getLogger("collab.backplane.redis")

# Components in /readyz: the link (connect, TLS, AUTH, publish) and the listener.
LINK = "redis"
SUBSCRIBER = "redis_subscriber"

MAX_QUEUE = 10_000
MAX_BATCH = 256
# A connection that stayed up this long resets the backoff.
STABLE_AFTER = 1.0

_LINK_ERRORS = (RedisError, OSError, BackplaneError, TimeoutError)


class RedisBackplane:
    name = "redis"

    def __init__(self, options: RedisOptions, *, health: Health | None = None,
                 events: Callable[[str, int], None] | None = None) -> None:
        self.options = options
        self.health = health if health is not None else Health()
        self._events = events
        self.control_channel = f"{options.namespace}:backplane"
        self._handlers: dict[str, Handler] = {}
        self._callbacks: list[ResubscribedCallback] = []
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wake = asyncio.Event()
        self._sub_lock = asyncio.Lock()
        self._cycle: Cycle | None = None
        self._last_cycle: Cycle | None = None
        self._connected = False
        self._supervisor: asyncio.Task[None] | None = None
        self._first_outcome = asyncio.Event()
        self._drained = asyncio.Event()
        self._dropped = 0
        self._overflowed = False
        self._resync_tasks: set[asyncio.Task[None]] = set()
        self._fetches = TaskSet("redis backplane fetches")
        self.connects = 0
        self.last_error = ""

    @property
    def connected(self) -> bool:
        return self._connected

    def _count(self, event: str, n: int = 1) -> None:
        if self._events is not None:
            self._events(event, n)

    # -- interface -------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting; wait (bounded) for the first outcome so that a
        misconfiguration is in the start-up log; never raise for it."""
        for name in (LINK, SUBSCRIBER):
            self.health.set_pending(name, "connecting", url=self.options.safe_url)
        log.info("redis backplane: connecting to %s", self.options.describe())
        self._supervisor = asyncio.get_running_loop().create_task(
            self._supervise(), name="redis-backplane")
        try:
            await asyncio.wait_for(self._first_outcome.wait(), 2 * self.options.socket_timeout + 1)
        except TimeoutError:
            log.error("redis backplane: no answer from %s within %.0f s at start-up; "
                      "serving local rooms only until it answers",
                      self.options.safe_url, 2 * self.options.socket_timeout + 1)

    async def stop(self) -> None:
        if self._connected and self._queue:
            # Let the last local edits reach the other instances.
            self._drained.clear()
            self._wake.set()
            try:
                await asyncio.wait_for(self._drained.wait(), self.options.socket_timeout)
            except TimeoutError:
                log.warning("redis backplane: %d messages not published at shutdown",
                            len(self._queue))
        if self._supervisor is not None:
            self._supervisor.cancel()
            try:
                await self._supervisor
            except asyncio.CancelledError:
                pass
            self._supervisor = None
        if self._last_cycle is not None:
            await self._last_cycle.close()  # in case cancellation cut its close short
            self._last_cycle = None
        for task in list(self._resync_tasks):
            task.cancel()
        await self._fetches.aclose()
        self._connected = False

    async def subscribe(self, channel: str, handler: Handler) -> None:
        async with self._sub_lock:
            self._handlers[channel] = handler
            cycle = self._cycle
            if not self._connected or cycle is None:
                return  # subscribed by the next cycle, then anti-entropy runs
            fut = asyncio.get_running_loop().create_future()
            cycle.confirms[channel] = fut
            try:
                await cycle.pubsub.subscribe(channel)
                await asyncio.wait_for(asyncio.shield(fut), self.options.socket_timeout)
            except Exception as exc:
                # Whatever redis-py raised (its connection may be torn down by
                # the listener at the same moment): the cycle fails with it,
                # the supervisor logs it, the next cycle subscribes again.
                cycle.fail(exc)
            finally:
                cycle.confirms.pop(channel, None)

    async def unsubscribe(self, channel: str) -> None:
        async with self._sub_lock:
            if self._handlers.pop(channel, None) is None:
                return
            cycle = self._cycle
            if self._connected and cycle is not None:
                try:
                    await cycle.pubsub.unsubscribe(channel)
                except Exception as exc:  # as in subscribe()
                    cycle.fail(exc)

    def publish(self, channel: str, payload: bytes) -> None:
        if not self._connected:
            # Anti-entropy after the reconnect carries it; count it, log once per outage.
            if self._dropped == 0:
                log.warning("redis backplane down (%s): publishing suspended, local editing "
                            "continues; anti-entropy will resend on reconnect", self.last_error)
            self._dropped += 1
            self._count("dropped")
            return
        if len(self._queue) >= MAX_QUEUE:
            if not self._overflowed:
                log.error("redis backplane: outbound queue full (%d); dropping, a resync "
                          "follows once it drains", MAX_QUEUE)
            self._overflowed = True
            self._count("dropped")
            return
        self._queue.append((channel, payload))
        self._wake.set()

    def add_resubscribed_callback(self, callback: ResubscribedCallback) -> None:
        self._callbacks.append(callback)

    # -- supervisor ------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._run_cycle(attempt)
                raise BackplaneError("connection cycle ended without an error")
            except _LINK_ERRORS as exc:
                cause = explain(exc, self.options)
            except Exception as exc:
                # A bug here must not end cross-instance sync for good: loud, then retried.
                log.exception("redis backplane: unexpected error in the connection cycle")
                cause = f"internal error: {type(exc).__name__}: {exc}"
            finally:
                was_connected = self._connected
                self._connected = False
                self._cycle = None
            if was_connected and loop.time() - started >= STABLE_AFTER:
                attempt = 0
            self.last_error = cause
            self._count("error")
            lost = len(self._queue)
            self._queue.clear()
            self._dropped += lost
            delay = backoff_delay(attempt, self.options.backoff_base, self.options.backoff_cap)
            attempt += 1
            for name in (LINK, SUBSCRIBER):
                self.health.set_failing(name, cause, url=self.options.safe_url,
                                        attempt=attempt, retry_in=round(delay, 3))
            log.error("redis backplane: %s; %s; reconnect attempt %d in %.2f s",
                      cause, "link lost" if was_connected else "cannot connect", attempt, delay)
            self._first_outcome.set()
            await asyncio.sleep(delay)
            self._count("reconnect")

    async def _run_cycle(self, attempt: int) -> None:
        pool = ConnectionPool(**self.options.connection_kwargs())
        client: Redis = Redis(connection_pool=pool)
        cycle = self._last_cycle = Cycle(pool, client, client.pubsub())
        try:
            await client.ping()  # TCP, TLS handshake, AUTH: the misconfigurations fail here
            self.health.set_ok(LINK, url=self.options.safe_url, attempt=0, retry_in=None)
            async with self._sub_lock:
                await self._subscribe_all(cycle)
                self._cycle = cycle
                self._connected = True
            self.connects += 1
            self.health.set_ok(SUBSCRIBER, url=self.options.safe_url, attempt=0, retry_in=None,
                               channels=len(self._handlers))
            dropped, self._dropped = self._dropped, 0
            log.info("redis backplane: connected to %s; %d channels subscribed%s",
                     self.options.describe(), len(self._handlers),
                     f" (after {attempt} failed attempts; {dropped} messages dropped while "
                     "down, resyncing)" if attempt else "")
            self._first_outcome.set()
            self._spawn_resync()
            tasks = [asyncio.ensure_future(cycle.failed),
                     asyncio.create_task(self._listen(cycle)),
                     asyncio.create_task(self._publish_loop(cycle))]
            try:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()  # raises the cause
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await cycle.close()

    async def _subscribe_all(self, cycle: Cycle) -> None:
        channels = [self.control_channel, *self._handlers]
        await cycle.pubsub.subscribe(*channels)
        pending = set(channels)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.socket_timeout
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BackplaneError(f"Redis did not confirm {len(pending)} subscriptions "
                                     f"within {self.options.socket_timeout:g} s")
            msg = await cycle.pubsub.get_message(timeout=remaining)
            if msg is None:
                continue
            if msg["type"] == "subscribe":
                pending.discard(_channel(msg))
            else:
                self._dispatch(cycle, msg)

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
            log.exception("redis backplane: resubscribed callback %r failed", callback)

    # -- the three loops of a cycle ------------------------------------------------

    async def _listen(self, cycle: Cycle) -> None:
        """One loop reads everything and fans out; PINGs detect a hung server."""
        loop = asyncio.get_running_loop()
        timeout = self.options.socket_timeout
        ping_every = max(0.2, timeout / 2)
        last_rx = last_ping = loop.time()
        while True:
            msg = await cycle.pubsub.get_message(timeout=ping_every)
            now = loop.time()
            if msg is not None:
                last_rx = now
                self._dispatch(cycle, msg)
            if now - last_rx > ping_every + timeout:
                raise BackplaneError(
                    f"no answer from Redis for {now - last_rx:.1f} s (PING unanswered): "
                    "the server is hung or the network path is dead")
            if now - last_ping >= ping_every:
                last_ping = now
                await cycle.pubsub.ping()

    def _dispatch(self, cycle: Cycle, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "message":
            channel = _channel(msg)
            handler = self._handlers.get(channel)
            if handler is None:
                return  # unsubscribed meanwhile
            self._count("receive")
            key = blobs.pointed_key(msg["data"])
            if key is not None:
                self._fetches.spawn(self._fetch(cycle, channel, key), name=f"fetch {key}")
                return
            try:
                handler(msg["data"])
            except Exception:
                # A handler bug must not take the link down for every room; it is loud.
                self._count("error")
                log.exception("redis backplane: handler for %r failed", _channel(msg))
        elif kind == "subscribe":
            fut = cycle.confirms.get(_channel(msg))
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _fetch(self, cycle: Cycle, channel: str, key: str) -> None:
        """Read a large payload whose pointer arrived, and hand it on."""
        try:
            data: bytes | None = await cycle.client.get(key)  # type: ignore[assignment]
        except _LINK_ERRORS as exc:
            cycle.fail(exc)  # the supervisor reconnects; anti-entropy recovers it
            return
        handler = self._handlers.get(channel)
        if handler is None:
            return
        if data is None:
            log.error("redis backplane: a large message on %r expired before it was read; "
                      "resyncing", channel)
            self._spawn_resync()
            return
        try:
            handler(data)
        except Exception:
            self._count("error")
            log.exception("redis backplane: handler for %r failed", channel)

    async def _publish_loop(self, cycle: Cycle) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._drained.set()
                if self._overflowed:
                    self._overflowed = False
                    self._spawn_resync()
                await self._wake.wait()
                self._wake.clear()
                continue
            batch = [queue.popleft() for _ in range(min(MAX_BATCH, len(queue)))]
            limit = self.options.max_message_bytes
            async with cycle.client.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    if len(payload) > limit:
                        # Never published whole: it would pass the subscribers'
                        # pub/sub output buffer (see redis_blobs).
                        key = blobs.new_key(self.options.namespace)
                        pipe.set(key, payload, px=blobs.BLOB_TTL_MS)
                        payload = blobs.pointer(key)
                        self._count("large")
                    pipe.publish(channel, payload)
                await pipe.execute()
            self._count("publish", len(batch))


def _channel(msg: dict[str, Any]) -> str:
    channel = msg["channel"]
    return channel.decode("utf-8") if isinstance(channel, bytes) else str(channel)


def redis_backplane_for(settings: RedisSettings, health: Health,
                        metrics: Metrics) -> RedisBackplane:
    """The backplane ``create_app`` builds when ``COLLAB_REDIS_URL`` is set."""
    counter = metrics.backplane_events
    return RedisBackplane(RedisOptions.from_settings(settings), health=health,
                          events=lambda event, n: counter.labels(event).inc(n))
