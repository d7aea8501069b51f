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
from collections.abc import Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from ..config import RedisSettings
from ..errors import BackplaneError
from ..observability.health import Health
from ..observability.metrics import Metrics
from .base import Handler
from .redis_base import LINK, STABLE_AFTER, SUBSCRIBER, QueuedRedisBackplane
from .redis_base import channel_name as _channel_name
from .redis_options import RedisOptions, explain

log = logging.getLogger("collab.backplane.redis")

__all__ = ["LINK", "SUBSCRIBER", "RedisBackplane", "redis_backplane_for"]

_LINK_ERRORS = (RedisError, OSError, BackplaneError, TimeoutError)


class _Cycle:
    """State of one connection cycle (one pool, one pub/sub connection)."""

    def __init__(self, pool: ConnectionPool, client: Redis, pubsub: PubSub) -> None:
        self.pool = pool
        self.client = client
        self.pubsub = pubsub
        self.failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.confirms: dict[str, asyncio.Future[None]] = {}

    def fail(self, exc: BaseException) -> None:
        if not self.failed.done():
            self.failed.set_exception(exc)
        # Subscribers waiting for a confirmation stop waiting: the next cycle
        # subscribes their channels again, then anti-entropy runs.
        for fut in self.confirms.values():
            if not fut.done():
                fut.set_result(None)

    async def close(self) -> None:
        """Close every connection of the cycle (idempotent; dead ones too)."""
        steps = (
            self._close_pubsub_connection,
            self.pubsub.aclose,
            self.client.aclose,
            self.pool.disconnect,
        )
        for step in steps:
            try:
                await step()
            except Exception as exc:  # a dead connection may fail to close in any way
                log.debug("redis backplane: closing a dead connection: %r", exc)

    async def _close_pubsub_connection(self) -> None:
        # PubSub.aclose() only starts closing its socket (so that a reader
        # still on it cannot deadlock it); our listener is gone by now, so wait
        # for the close to finish: over TLS that is a close_notify exchange,
        # and a cycle must not leave it half-done behind it.
        conn = self.pubsub.connection
        if conn is not None:
            await conn.disconnect()


class RedisBackplane(QueuedRedisBackplane):
    name = "redis"

    def __init__(
        self,
        options: RedisOptions,
        *,
        health: Health | None = None,
        events: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__(options, log, health=health, events=events)
        self.control_channel = f"{options.namespace}:backplane"
        self._cycle: _Cycle | None = None
        self._last_cycle: _Cycle | None = None

    # -- interface -------------------------------------------------------------

    async def stop(self) -> None:
        await self._drain_and_cancel()
        if self._last_cycle is not None:
            await self._last_cycle.close()  # in case cancellation cut its close short
            self._last_cycle = None
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
            delay = self._failed(cause, attempt, was_connected=was_connected)
            attempt += 1
            await asyncio.sleep(delay)
            self._count("reconnect")

    async def _run_cycle(self, attempt: int) -> None:
        pool = ConnectionPool(**self.options.connection_kwargs())
        client: Redis = Redis(connection_pool=pool)
        cycle = self._last_cycle = _Cycle(pool, client, client.pubsub())
        try:
            await client.ping()  # TCP, TLS handshake, AUTH: the misconfigurations fail here
            self.health.set_ok(LINK, url=self.options.safe_url, attempt=0, retry_in=None)
            async with self._sub_lock:
                await self._subscribe_all(cycle)
                self._cycle = cycle
                self._connected = True
            self.connects += 1
            self.health.set_ok(
                SUBSCRIBER,
                url=self.options.safe_url,
                attempt=0,
                retry_in=None,
                channels=len(self._handlers),
            )
            dropped, self._dropped = self._dropped, 0
            log.info(
                "redis backplane: connected to %s; %d channels subscribed%s",
                self.options.describe(),
                len(self._handlers),
                f" (after {attempt} failed attempts; {dropped} messages dropped while "
                "down, resyncing)"
                if attempt
                else "",
            )
            self._first_outcome.set()
            self._spawn_resync()
            tasks = [
                asyncio.ensure_future(cycle.failed),
                asyncio.create_task(self._listen(cycle)),
                asyncio.create_task(self._publish_loop(cycle)),
            ]
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

    async def _subscribe_all(self, cycle: _Cycle) -> None:
        channels = [self.control_channel, *self._handlers]
        await cycle.pubsub.subscribe(*channels)
        pending = set(channels)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.socket_timeout
        while pending:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise BackplaneError(
                    f"Redis did not confirm {len(pending)} subscriptions "
                    f"within {self.options.socket_timeout:g} s"
                )
            msg = await cycle.pubsub.get_message(timeout=remaining)
            if msg is None:
                continue
            if msg["type"] == "subscribe":
                pending.discard(_channel(msg))
            else:
                self._dispatch(cycle, msg)

    # -- the three loops of a cycle ------------------------------------------------

    async def _listen(self, cycle: _Cycle) -> None:
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
                    "the server is hung or the network path is dead"
                )
            if now - last_ping >= ping_every:
                last_ping = now
                await cycle.pubsub.ping()

    def _dispatch(self, cycle: _Cycle, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "message":
            self._deliver(_channel(msg), msg["data"])
        elif kind == "subscribe":
            fut = cycle.confirms.get(_channel(msg))
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def _get(self, key: str) -> bytes | None:
        cycle = self._cycle
        if cycle is None:
            raise BackplaneError("not connected")
        data: bytes | None = await cycle.client.get(key)  # type: ignore[assignment]
        return data

    async def _publish_loop(self, cycle: _Cycle) -> None:
        while True:
            batch = await self._stage_large(cycle.client, await self._next_batch())
            async with cycle.client.pipeline(transaction=False) as pipe:
                for channel, payload in batch:
                    pipe.publish(channel, payload)
                await pipe.execute()
            self._count("publish", len(batch))

    async def _listeners(self, client: Any, channel: str) -> int:
        counts = await client.pubsub_numsub(channel)
        return int(counts[0][1]) if counts else 0


def _channel(msg: dict[str, Any]) -> str:
    return _channel_name(msg["channel"])


def redis_backplane_for(
    settings: RedisSettings, health: Health, metrics: Metrics
) -> RedisBackplane:
    """The backplane ``create_app`` builds when ``COLLAB_REDIS_URL`` is set."""
    counter = metrics.backplane_events
    return RedisBackplane(
        RedisOptions.from_settings(settings),
        health=health,
        events=lambda event, n: counter.labels(event).inc(n),
    )
