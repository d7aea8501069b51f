"""The Backplane contract, run against every implementation.

Redis here is the real thing, as deployed: TLS with a CA, a password on the
default user and an ACL user (the backplane logs in as the ACL user). Breaking
the link means SIGKILL and a restart on the same port; on the cluster (3
primaries + 3 replicas, sharded pub/sub) every primary is killed at once, so
no replica can be elected and the same primaries come back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Protocol

import pytest

from collab.backplane import Backplane, MemoryBackplane, MemoryHub
from collab.backplane.redis import RedisBackplane
from collab.backplane.redis_cluster import RedisClusterBackplane
from collab.backplane.redis_options import RedisOptions
from collab.observability.health import Health
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


class Harness(Protocol):
    async def member(self) -> Backplane: ...
    async def break_link(self) -> None: ...
    async def restore_link(self) -> None: ...


class MemoryHarness:
    def __init__(self) -> None:
        self.hub = MemoryHub()
        self.members: list[MemoryBackplane] = []

    async def member(self) -> Backplane:
        bp = MemoryBackplane(self.hub)
        self.members.append(bp)
        return bp

    async def break_link(self) -> None:
        for bp in self.members:
            bp.disconnect()

    async def restore_link(self) -> None:
        for bp in self.members:
            await bp.reconnect()


class RedisHarness:
    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.members: list[RedisBackplane] = []

    async def member(self) -> Backplane:
        options = RedisOptions(
            self.server.url(username="app"),
            backoff_base=0.05,
            backoff_cap=0.5,
            socket_timeout=2.0,
            prefix="contract",
        )
        bp = RedisBackplane(options, health=Health())
        self.members.append(bp)
        return bp

    async def break_link(self) -> None:
        await self.server.akill()

    async def restore_link(self) -> None:
        await self.server.arestart()


class ClusterHarness:
    def __init__(self, cluster: RedisCluster) -> None:
        self.cluster = cluster
        self.members: list[RedisClusterBackplane] = []
        self.killed: list[RedisServer] = []

    async def member(self) -> Backplane:
        options = RedisOptions(
            self.cluster.url(username="app"),
            backoff_base=0.05,
            backoff_cap=0.5,
            socket_timeout=2.0,
            prefix="contract",
            cluster=True,
        )
        bp = RedisClusterBackplane(options, health=Health())
        self.members.append(bp)
        return bp

    async def break_link(self) -> None:
        self.killed = self.cluster.primaries()
        for node in self.killed:
            await asyncio.to_thread(self.cluster.kill, node)
        # A member with no channel on a shard hears of its loss only through
        # its PINGs: the link is broken once every member says so.
        await wait_until(
            lambda: not any(bp.health.ready for bp in self.members),
            timeout=15,
            what="every member reports the cluster down",
        )

    async def restore_link(self) -> None:
        for node in self.killed:
            await asyncio.to_thread(node.restart)
        await asyncio.to_thread(self.cluster.wait_healthy)


@pytest.fixture(params=["memory", "redis", "cluster"])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    h: MemoryHarness | RedisHarness | ClusterHarness
    if request.param == "memory":
        h = MemoryHarness()
    elif request.param == "cluster":
        h = ClusterHarness(request.getfixturevalue("redis_cluster"))
    else:
        make: Callable[..., RedisServer] = request.getfixturevalue("redis_factory")
        h = RedisHarness(make(tls=True, password="default-secret", users={"app": "app-secret"}))
    yield h
    for bp in h.members:
        await bp.stop()


class Inbox:
    def __init__(self) -> None:
        self.items: list[bytes] = []
        self._changed = asyncio.Event()

    def __call__(self, payload: bytes) -> None:
        self.items.append(payload)
        self._changed.set()

    async def wait_for(self, check: Callable[[list[bytes]], bool], timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while not check(self.items):
                self._changed.clear()
                await self._changed.wait()


class Resubscribed:
    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Event()

    async def __call__(self) -> None:
        self.count += 1
        self._changed.set()

    async def wait_for(self, count: int, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while self.count < count:
                self._changed.clear()
                await self._changed.wait()


async def started(harness: Harness) -> tuple[Backplane, Resubscribed]:
    bp = await harness.member()
    calls = Resubscribed()
    bp.add_resubscribed_callback(calls)
    await bp.start()
    await calls.wait_for(1)  # connected: the first (re)subscribe has happened
    return bp, calls


async def test_binary_payloads_arrive_intact(harness: Harness) -> None:
    a, _ = await started(harness)
    inbox = Inbox()
    await a.subscribe("bin", inbox)
    payload = bytes(range(256)) * 4
    a.publish("bin", payload)
    a.publish("bin", b"")
    await inbox.wait_for(lambda items: len(items) == 2)
    assert inbox.items == [payload, b""]


async def test_every_member_gets_every_message_in_order(harness: Harness) -> None:
    a, _ = await started(harness)
    b, _ = await started(harness)
    at_a, at_b = Inbox(), Inbox()
    await a.subscribe("room", at_a)
    await b.subscribe("room", at_b)
    sent = [f"m{i}".encode() for i in range(200)]
    for payload in sent:
        a.publish("room", payload)
    await at_b.wait_for(lambda items: len(items) == len(sent))
    await at_a.wait_for(lambda items: len(items) == len(sent))
    assert at_b.items == sent
    assert at_a.items == sent  # the publisher hears itself, as with Redis


async def test_channels_are_separate_and_unsubscribe_stops_delivery(harness: Harness) -> None:
    a, _ = await started(harness)
    b, _ = await started(harness)
    at_a, at_b, other = Inbox(), Inbox(), Inbox()
    await a.subscribe("one", at_a)
    await b.subscribe("one", at_b)
    await b.subscribe("two", other)
    a.publish("one", b"first")
    await at_b.wait_for(lambda items: items == [b"first"])
    await b.unsubscribe("one")
    a.publish("one", b"second")
    a.publish("two", b"marker")
    await other.wait_for(lambda items: items == [b"marker"])
    await at_a.wait_for(lambda items: items == [b"first", b"second"])
    assert at_b.items == [b"first"]


async def test_publish_while_down_never_raises_and_delivery_resumes(harness: Harness) -> None:
    a, calls_a = await started(harness)
    b, calls_b = await started(harness)
    at_b = Inbox()
    await b.subscribe("room", at_b)
    a.publish("room", b"before")
    await at_b.wait_for(lambda items: items == [b"before"])
    await harness.break_link()
    for i in range(50):
        a.publish("room", f"while down {i}".encode())  # dropped or not: never raises
    await harness.restore_link()
    # Both members come back by themselves and say so (the hook for anti-entropy).
    await calls_a.wait_for(2)
    await calls_b.wait_for(2)
    a.publish("room", b"after")
    await at_b.wait_for(lambda items: b"after" in items)


async def test_subscribe_while_down_takes_effect_on_reconnect(harness: Harness) -> None:
    a, calls_a = await started(harness)
    b, calls_b = await started(harness)
    await harness.break_link()
    at_b = Inbox()
    started_at = time.monotonic()
    await b.subscribe("late", at_b)  # returns at once: the link is down
    assert time.monotonic() - started_at < 5
    await harness.restore_link()
    await calls_a.wait_for(2)
    await calls_b.wait_for(2)
    a.publish("late", b"hello")
    await at_b.wait_for(lambda items: items == [b"hello"])
