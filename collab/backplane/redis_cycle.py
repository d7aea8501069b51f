"""One connection cycle of the Redis backplane: a pool, a client, a pub/sub
connection, and how the cycle ends."""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import PubSub

log = logging.getLogger("collab.backplane.redis")


class Cycle:
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
        steps = (self._close_pubsub_connection, self.pubsub.aclose, self.client.aclose,
                 self.pool.disconnect)
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
