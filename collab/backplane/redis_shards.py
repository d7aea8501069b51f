"""The cluster backplane's connections: one client per shard primary
(:class:`Nodes`, publishing), one SSUBSCRIBE connection per primary that owns
a subscribed channel (:class:`Shard`).

A :class:`Shard` listens on one node: it delivers ``smessage``, confirms
``ssubscribe``, and tells the backplane when the node gives a channel away
(a ``sunsubscribe`` it did not ask for: the slot was resharded, or the node
was failed over to its replica) or when the node is lost (the connection
fails, or a PING goes unanswered: a hung node keeps TCP open). The backplane
decides what to do about it; a shard never reconnects by itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import ConnectionPool, Redis
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, RedisError

from ..errors import BackplaneError
from .redis_base import channel_name
from .redis_options import RedisOptions, explain

log = logging.getLogger("collab.backplane.redis_cluster")


class Nodes:
    """One client per primary, named ``host:port`` as CLUSTER SLOTS names it:
    the URL's TLS, AUTH and timeouts, redis-py's own retries off. Its pool
    serves the publisher and hands a shard its pub/sub connection."""

    def __init__(self, options: RedisOptions) -> None:
        self.options = options
        self._clients: dict[str, Redis] = {}
        self._options: dict[str, RedisOptions] = {}

    def options_of(self, name: str) -> RedisOptions:
        if name not in self._options:
            self._options[name] = node_options(self.options, name)
        return self._options[name]

    def client(self, name: str) -> Redis:
        client = self._clients.get(name)
        if client is None:
            host, _, port = name.rpartition(":")
            pool = ConnectionPool(**self.options.connection_kwargs(host=host, port=int(port)))
            client = self._clients[name] = Redis.from_pool(pool)
        return client

    async def publish(self, name: str, msgs: list[tuple[str, bytes]]) -> tuple[int, str]:
        """SPUBLISH in one pipeline; returns how many failed, and why."""
        try:
            async with self.client(name).pipeline(transaction=False) as pipe:
                for channel, payload in msgs:
                    pipe.spublish(channel, payload)
                results = await pipe.execute(raise_on_error=False)
        except (RedisError, OSError, TimeoutError) as exc:
            return len(msgs), link_lost(exc, self.options_of(name))
        failed = [r for r in results if isinstance(r, Exception)]
        # MOVED: the slot has a new owner.
        return len(failed), (f"{name}: {failed[0]}" if failed else "")

    async def ping(self, names: list[str]) -> None:
        """PING every node; BackplaneError naming the first that fails."""
        results = await asyncio.gather(
            *(self.client(n).ping() for n in names), return_exceptions=True
        )
        for name, result in zip(names, results, strict=True):
            if isinstance(result, BaseException):
                cause = link_lost(result, self.options_of(name))
                raise BackplaneError(f"primary {name}: {cause}") from result

    async def keep_only(self, names: set[str]) -> None:
        """Close the clients of nodes that are no primaries any more."""
        for name in [n for n in self._clients if n not in names]:
            await self._clients.pop(name).aclose()

    async def aclose(self) -> None:
        await self.keep_only(set())


class Shard:
    """The SSUBSCRIBE connection to one primary, ``name`` = ``host:port``."""

    def __init__(
        self,
        name: str,
        client: Redis,
        options: RedisOptions,
        *,
        deliver: Callable[[str, bytes], None],
        moved: Callable[[Shard, str], None],
        lost: Callable[[Shard, str], None],
    ) -> None:
        self.name = name
        self.options = options
        self.pubsub = client.pubsub()
        self.channels: set[str] = set()
        self.leaving: set[str] = set()  # SUNSUBSCRIBEs we sent ourselves
        self.confirms: dict[str, asyncio.Future[None]] = {}
        self._deliver = deliver
        self._moved = moved
        self._lost = lost
        self.task: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.task is not None and not self.task.done()

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self._listen(), name=f"shard {self.name}"
        )

    async def close(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        self._release_confirms()
        try:
            await self.pubsub.aclose()  # type: ignore[no-untyped-call]
            if self.pubsub.connection is not None:
                await self.pubsub.connection.disconnect()
        except Exception as exc:  # a dead connection may fail to close in any way
            log.debug("cluster backplane: closing shard %s: %r", self.name, exc)

    def _release_confirms(self) -> None:
        # Whoever waits for a confirmation stops waiting: the backplane sees
        # the shard is dead and subscribes those channels again elsewhere.
        for fut in self.confirms.values():
            if not fut.done():
                fut.set_result(None)

    async def _listen(self) -> None:
        loop = asyncio.get_running_loop()
        timeout = self.options.socket_timeout
        ping_every = max(0.2, timeout / 2)
        last_rx = last_ping = loop.time()
        try:
            while True:
                msg = await self.pubsub.get_message(timeout=ping_every)
                now = loop.time()
                if msg is not None:
                    last_rx = now
                    self._on_message(msg)
                if now - last_rx > ping_every + timeout:
                    raise BackplaneError(
                        f"no answer for {now - last_rx:.1f} s (PING "
                        "unanswered): the node is hung or the path is dead"
                    )
                if now - last_ping >= ping_every:
                    last_ping = now
                    await self.pubsub.ping()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._release_confirms()
            self._lost(self, link_lost(exc, self.options))

    def _on_message(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind in ("pong", "ping"):
            return
        channel = channel_name(msg["channel"])
        if kind == "smessage":
            self._deliver(channel, msg["data"])
        elif kind == "ssubscribe":
            fut = self.confirms.get(channel)
            if fut is not None and not fut.done():
                fut.set_result(None)
        elif kind == "sunsubscribe":
            if channel in self.leaving:
                self.leaving.discard(channel)
            elif channel in self.channels:
                self.channels.discard(channel)
                self._moved(self, channel)


def node_options(options: RedisOptions, name: str) -> RedisOptions:
    """The options with the URL pointing at node ``host:port`` (same user,
    password, TLS files), so that a failure names the node it happened on."""
    parts = urlsplit(options.url)
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{name}" if userinfo else name
    return dataclasses.replace(options, url=urlunsplit(parts._replace(netloc=netloc)))


def link_lost(exc: BaseException, options: RedisOptions) -> str:
    """The cause of a failure on a link that worked: a reset there means the
    node went away, not a TLS misconfiguration (explain()'s guess at connect)."""
    if isinstance(exc, ConnectionError) and not isinstance(
        exc, (AuthenticationError, NoPermissionError)
    ):
        return f"connection to {options.address} lost ({type(exc).__name__}: {exc})"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError)):
        return f"connection to {options.address} lost ({type(exc).__name__}: {exc})"
    return explain(exc, options)
