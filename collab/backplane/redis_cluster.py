"""The cluster backplane: sharded pub/sub (SSUBSCRIBE / SPUBLISH) on a Redis Cluster.

Classic PUBLISH on a cluster is broadcast to every node; a sharded channel
lives on the one shard that owns its slot. Room channels carry a hash tag
(``{collab:room:NAME}``, ``Replicator.channel``): a room is one slot.

Why not redis-py's ``ClusterPubSub``: its per-node connections reconnect and
re-subscribe silently, and it follows a slot move only when some other
command of the client gets a MOVED; both hide the moments after which a room
must run anti-entropy. So redis-py's ``RedisCluster`` does discovery and the
slot map, and ``redis_shards.py`` holds our own connections: SSUBSCRIBE per
slot on one connection per shard primary, SPUBLISH pipelined per primary.

Slot moves are followed without the operator: a primary that loses a slot
(reshard, failover) sends SUNSUBSCRIBE; a killed primary's connection dies
or stops answering PING; a publish gets MOVED. Each wakes the supervisor,
which re-reads CLUSTER SLOTS, moves the channels to their owners and runs
the resubscribed callbacks (anti-entropy). While a shard is unreachable it
retries with backoff and jitter, the other shards keep working, and
``redis_subscriber`` in /readyz names the node and the cause.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable

from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisClusterException, RedisError

from ..config import RedisSettings
from ..errors import BackplaneError
from ..observability.health import Health
from ..observability.metrics import Metrics
from .base import Handler
from .redis_base import LINK, STABLE_AFTER, SUBSCRIBER, QueuedRedisBackplane
from .redis_options import RedisOptions, explain
from .redis_shards import Nodes, Shard

log = logging.getLogger("collab.backplane.redis_cluster")

_ERRORS = (RedisError, RedisClusterException, OSError, BackplaneError, TimeoutError)


class RedisClusterBackplane(QueuedRedisBackplane):
    name = "redis_cluster"

    def __init__(
        self,
        options: RedisOptions,
        *,
        health: Health | None = None,
        events: Callable[[str, int], None] | None = None,
    ) -> None:
        super().__init__(options, log, health=health, events=events)
        self._cluster: RedisCluster | None = None
        self._shards: dict[str, Shard] = {}
        self._nodes = Nodes(options)
        self._where: dict[str, str] = {}  # channel -> shard it is subscribed on
        self._dirty = asyncio.Event()
        self._lost = False  # something may have been missed: resync after reconcile
        self._publisher: asyncio.Task[None] | None = None
        self.moves = 0  # channels moved to a new owner (slot move or failover)

    def describe(self) -> str:
        return f"cluster via {self.options.describe()}"

    # -- interface -------------------------------------------------------------

    async def stop(self) -> None:
        await self._drain_and_cancel()
        await self._teardown()

    async def subscribe(self, channel: str, handler: Handler) -> None:
        async with self._sub_lock:
            self._handlers[channel] = handler
            if not self._connected:
                return  # subscribed by the supervisor, then anti-entropy runs
            try:
                await self._subscribe_on_owners([channel])
            except _ERRORS as exc:
                self._stale(f"subscribing {channel!r}: {explain(exc, self.options)}")

    async def unsubscribe(self, channel: str) -> None:
        async with self._sub_lock:
            if self._handlers.pop(channel, None) is not None:
                await self._leave(channel)

    async def _leave(self, channel: str) -> None:
        """SUNSUBSCRIBE ``channel`` where it is subscribed (best effort: a dead
        node's listener reports that itself)."""
        shard = self._shards.get(self._where.pop(channel, ""))
        if shard is None or channel not in shard.channels:
            return
        shard.channels.discard(channel)
        if not shard.channels:
            # Nothing left to hear there: an idle connection with no
            # subscription would only trip its own PING watchdog.
            del self._shards[shard.name]
            await shard.close()
            return
        shard.leaving.add(channel)
        try:
            await shard.pubsub.sunsubscribe(channel)
        except _ERRORS as exc:
            self._stale(f"unsubscribing on {shard.name}: {explain(exc, shard.options)}")

    # -- supervisor ------------------------------------------------------------

    async def _supervise(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        refresh = False
        while True:
            started = loop.time()
            in_link = True  # a failure before the reconcile is the link's (discovery, AUTH)
            try:
                self._dirty.clear()
                if self._cluster is None:
                    await self._open()
                elif refresh:
                    await self._cluster.nodes_manager.initialize()
                    self.health.set_ok(LINK, url=self.options.safe_url, attempt=0, retry_in=None)
                in_link = False
                async with self._sub_lock:
                    await self._reconcile()
                self._connected = True
                self.health.set_ok(
                    SUBSCRIBER,
                    url=self.options.safe_url,
                    attempt=0,
                    retry_in=None,
                    channels=len(self._where),
                    shards=sorted(self._shards),
                )
                if self._lost or self.connects == 0:
                    self._lost = False
                    self.connects += 1
                    dropped, self._dropped = self._dropped, 0
                    log.info(
                        "cluster backplane: %d channels subscribed on %d shard primaries%s",
                        len(self._where),
                        len(self._shards),
                        f" (after {attempt} failed attempts; {dropped} messages dropped, resyncing)"
                        if attempt or dropped
                        else "",
                    )
                    self._spawn_resync()
                self._first_outcome.set()
                in_link = True
                await self._watch()
                if loop.time() - started >= STABLE_AFTER:
                    attempt = 0
                refresh = True
                continue
            except BackplaneError as exc:
                cause = str(exc)  # already names the node and the cause
            except _ERRORS as exc:
                cause = explain(exc, self.options)
            except Exception as exc:
                # A bug here must not end cross-instance sync for good: loud, then retried.
                log.exception("cluster backplane: unexpected error in the supervisor")
                cause = f"internal error: {type(exc).__name__}: {exc}"
            self._lost = refresh = True
            was_connected = self._connected
            components = (LINK, SUBSCRIBER) if in_link else (SUBSCRIBER,)
            delay = self._failed(cause, attempt, was_connected=was_connected, components=components)
            attempt += 1
            await asyncio.sleep(delay)
            self._count("reconnect")

    async def _watch(self) -> None:
        """Wait for a reason to reconcile; meanwhile PING every primary, so a
        node that dies with none of our channels on it is noticed too (what
        was published to it is lost, and readiness must say so)."""
        every = max(0.2, self.options.socket_timeout / 2)
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), every)
                return
            except TimeoutError:
                pass
            assert self._cluster is not None
            await self._nodes.ping([node.name for node in self._cluster.get_primaries()])

    async def _open(self) -> None:
        """Discovery through the configuration endpoint: TCP, TLS, AUTH, and
        CLUSTER SLOTS (a non-cluster endpoint fails here, by name)."""
        cluster = RedisCluster(**self.options.cluster_kwargs())
        try:
            await cluster.initialize()
        except BaseException:
            await cluster.aclose()
            raise
        self._cluster = cluster
        self.health.set_ok(
            LINK,
            url=self.options.safe_url,
            attempt=0,
            retry_in=None,
            primaries=len(cluster.get_primaries()),
        )
        self._publisher = asyncio.get_running_loop().create_task(
            self._publish_loop(), name="cluster-backplane-publisher"
        )

    async def _teardown(self) -> None:
        self._connected = False
        if self._publisher is not None:
            self._publisher.cancel()
            await asyncio.gather(self._publisher, return_exceptions=True)
            self._publisher = None
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        self._where.clear()
        await self._nodes.aclose()
        if self._cluster is not None:
            await self._cluster.aclose()
            self._cluster = None

    def _stale(self, why: str) -> None:
        """The slot map may be out of date, or a message lost: wake the supervisor."""
        if not self._dirty.is_set():  # once per wake-up, not once per failed batch
            log.warning("cluster backplane: %s; re-reading the slot map", why)
        self._lost = True
        self._dirty.set()

    def _owner(self, channel: str) -> str:
        if self._cluster is None:
            raise BackplaneError("not connected to the cluster")
        node = self._cluster.get_node_from_key(channel)
        if node is None:
            raise BackplaneError(f"no primary serves the slot of {channel!r} right now")
        return str(node.name)

    async def _reconcile(self) -> None:
        """Every handled channel subscribed on its slot's current primary."""
        for channel, name in list(self._where.items()):
            if self._owner(channel) != name:
                self.moves += 1
                await self._leave(channel)
        await self._subscribe_on_owners([c for c in self._handlers if c not in self._where])
        for name, shard in list(self._shards.items()):
            if not shard.channels or not shard.alive:
                del self._shards[name]
                await shard.close()
        assert self._cluster is not None
        await self._nodes.keep_only({node.name for node in self._cluster.get_primaries()})

    async def _subscribe_on_owners(self, channels: list[str]) -> None:
        groups: dict[str, dict[int, list[str]]] = defaultdict(lambda: defaultdict(list))
        for channel in channels:
            groups[self._owner(channel)][key_slot(channel.encode())].append(channel)
        for name, by_slot in groups.items():
            shard = await self._shard(name)
            loop = asyncio.get_running_loop()
            futures = []
            for slot_channels in by_slot.values():
                for channel in slot_channels:
                    fut = shard.confirms[channel] = loop.create_future()
                    futures.append(fut)
                    shard.leaving.discard(channel)
                await shard.pubsub.ssubscribe(*slot_channels)
            async with asyncio.timeout(self.options.socket_timeout):
                await asyncio.gather(*futures)
            if not shard.alive:
                raise BackplaneError(f"shard primary {name} failed while subscribing")
            for slot_channels in by_slot.values():
                for channel in slot_channels:
                    shard.confirms.pop(channel, None)
                    shard.channels.add(channel)
                    self._where[channel] = name

    async def _shard(self, name: str) -> Shard:
        shard = self._shards.pop(name, None)
        if shard is not None:
            if shard.alive:
                self._shards[name] = shard
                return shard
            await shard.close()
        client, options = self._nodes.client(name), self._nodes.options_of(name)
        try:
            await client.ping()  # connect, TLS, AUTH, before SSUBSCRIBE
        except _ERRORS as exc:
            raise BackplaneError(f"shard primary {name}: {explain(exc, options)}") from exc
        shard = Shard(
            name, client, options, deliver=self._deliver, moved=self._on_moved, lost=self._on_lost
        )
        shard.start()
        self._shards[name] = shard
        return shard

    # -- what the shards report, and the publisher ------------------------------

    def _on_moved(self, shard: Shard, channel: str) -> None:
        """The node gave the channel's slot away (reshard, failover): follow it."""
        if self._where.get(channel) == shard.name:
            del self._where[channel]
            self.moves += 1
        self._stale(f"{shard.name} no longer serves {channel!r}")

    def _on_lost(self, shard: Shard, cause: str) -> None:
        self._count("error")
        self.health.set_failing(
            SUBSCRIBER, f"shard {shard.name}: {cause}", url=self.options.safe_url
        )
        for channel in shard.channels:
            if self._where.get(channel) == shard.name:
                del self._where[channel]
        shard.channels.clear()
        self._stale(f"shard {shard.name} lost: {cause}")

    async def _publish_loop(self) -> None:
        while True:
            batch = await self._next_batch()
            by_node: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
            for channel, payload in batch:
                try:
                    by_node[self._owner(channel)].append((channel, payload))
                except _ERRORS as exc:  # slot not covered right now
                    self._dropped_publish(1, explain(exc, self.options))
            await asyncio.gather(*(self._publish_to(n, msgs) for n, msgs in by_node.items()))

    async def _get(self, key: str) -> bytes | None:
        if self._cluster is None:
            raise BackplaneError("not connected to the cluster")
        data: bytes | None = await self._cluster.get(key)  # type: ignore[assignment]
        return data

    async def _publish_to(self, name: str, msgs: list[tuple[str, bytes]]) -> None:
        # A large message's key shares its channel's slot: the cluster client
        # sends the SET to this same primary.
        if self._cluster is not None:
            msgs = await self._stage_large(self._cluster, msgs)
        failed, why = await self._nodes.publish(name, msgs)
        self._count("publish", len(msgs) - failed)
        if failed:
            self._dropped_publish(failed, why)

    def _dropped_publish(self, n: int, why: str) -> None:
        self._count("dropped", n)
        self._stale(f"{n} messages not published ({why})")


def redis_cluster_backplane_for(
    settings: RedisSettings, health: Health, metrics: Metrics
) -> RedisClusterBackplane:
    """The backplane ``create_app`` builds when ``COLLAB_REDIS_CLUSTER`` is set."""
    counter = metrics.backplane_events
    return RedisClusterBackplane(
        RedisOptions.from_settings(settings),
        health=health,
        events=lambda event, n: counter.labels(event).inc(n),
    )
