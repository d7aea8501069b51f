"""Real ``collab serve`` processes on a real Redis Cluster (3 primaries + 3
replicas, TLS, AUTH token, ACL user), real JavaScript clients typing, and the
faults ElastiCache cluster mode meets: a shard primary SIGKILLed, a planned
CLUSTER FAILOVER, and the room's slot resharded to another primary. Nobody
restarts collab or tells it anything: it must follow the slot, and
anti-entropy must bring back what pub/sub dropped meanwhile.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.crc import key_slot

from tests.support.fixtures import CLUSTER_USERS
from tests.support.redis_cluster import RedisCluster
from tests.support.redis_server import RedisServer
from tests.support.servers import run_collab

from .helpers import BASE_ENV, converged, instances, js_client, tokens, type_tokens, until_ready
from .test_faults import type_and_signal

pytestmark = pytest.mark.anyio

ROOM = "cluster/doc"
CHANNEL = "{collab:0:room:cluster/doc}"  # what Replicator.channel names it on a cluster


def cluster_env(cluster: RedisCluster, **url: object) -> dict[str, str]:
    return {
        "COLLAB_REDIS_URL": cluster.url(username="app", **url),  # type: ignore[arg-type]
        "COLLAB_REDIS_CLUSTER": "true",
        "COLLAB_STORE_URL": "memory://",
    }


async def fault(cluster: RedisCluster, kind: str) -> tuple[RedisServer, RedisServer] | None:
    """Hit the shard that holds the room; after a SIGKILL, return the killed
    node (to restart) and the replica that is to take over."""
    owner = await asyncio.to_thread(cluster.owner, CHANNEL)
    if kind == "reshard":
        target = next(p for p in await asyncio.to_thread(cluster.primaries) if p is not owner)
        await asyncio.to_thread(cluster.move_slot, key_slot(CHANNEL.encode()), target)
        return None
    replica = await asyncio.to_thread(cluster.replica_of, owner)
    if kind == "failover":
        await asyncio.to_thread(cluster.failover, replica)
        return None
    await asyncio.to_thread(cluster.kill, owner)
    return owner, replica


@pytest.mark.parametrize("kind", ["reshard", "failover", "sigkill"])
async def test_shard_fault_while_typing_loses_nothing(
    tmp_path: Path, redis_cluster: RedisCluster, kind: str
) -> None:
    cluster = redis_cluster
    async with instances(tmp_path, 2, cluster_env(cluster)) as (a, b), js_client(tmp_path) as js:
        for handle, srv in (("a1", a), ("a2", a), ("b1", b)):
            await js.call("connect", handle=handle, url=srv.ws_url, room=ROOM)
        warm = {h: tokens(f"{h}-warm", 3) for h in ("a1", "b1")}
        await asyncio.gather(*(type_tokens(js, h, warm[h]) for h in warm))
        await converged(js, ["a1", "a2", "b1"], [m for ms in warm.values() for m in ms])

        during = {h: tokens(f"{h}-{kind}", 30) for h in ("a1", "b1")}
        hit = asyncio.Event()
        typing = [asyncio.create_task(type_and_signal(js, h, during[h], 8, hit)) for h in during]
        await asyncio.wait_for(hit.wait(), 20)
        hurt = await fault(cluster, kind)
        try:
            if hurt is not None:
                killed, replica = hurt
                # The shard is gone until its replica is elected: readiness says so.
                for proc in (a, b):
                    body = await until_ready(proc, 503)
                    assert body["components"]["redis_subscriber"]["status"] == "failing", body
                    assert str(killed.port) in str(body), body
                await asyncio.to_thread(cluster.wait_promoted, replica)
            await asyncio.gather(*typing)
        finally:
            if hurt is not None:
                await asyncio.to_thread(cluster.restart, hurt[0])  # back, as a replica
        for proc in (a, b):
            await until_ready(proc, 200)
        after = {h: tokens(f"{h}-after", 3) for h in ("a1", "b1")}
        await asyncio.gather(*(type_tokens(js, h, after[h]) for h in after))

        marks = [m for group in (warm, during, after) for ms in group.values() for m in ms]
        await converged(js, ["a1", "a2", "b1"], marks)
        for proc in (a, b):
            # Followed by itself: the subscription moved to the slot's new owner.
            await proc.wait_for_log("re-reading the slot map")
            assert CLUSTER_USERS["app"] not in proc.log_text()


@pytest.mark.parametrize("case", ["wrong password", "not a cluster"])
async def test_cluster_misconfiguration_is_named(
    tmp_path: Path, redis_cluster: RedisCluster, redis_factory, case: str
) -> None:
    if case == "wrong password":
        env, cause = cluster_env(redis_cluster, password="wrong-secret"), "AUTH failed"
    else:
        single = redis_factory(tls=True, password="single-secret")
        env = {**cluster_env(redis_cluster), "COLLAB_REDIS_URL": single.url()}
        cause = "not a cluster"
    async with js_client(tmp_path) as js, run_collab(tmp_path / "srv", {**BASE_ENV, **env}) as srv:
        body = await until_ready(srv, 503)
        assert cause in body["components"]["redis"]["error"], body
        await srv.wait_for_log(cause)
        for secret in ("wrong-secret", "single-secret", CLUSTER_USERS["app"]):
            assert secret not in str(body) and secret not in srv.log_text()
        # Local rooms keep working meanwhile.
        await js.call("connect", handle="x", url=srv.ws_url, room="local")
        await js.call("insert", handle="x", text="still here")
        await js.call("wait_text", handle="x", equals="still here", timeout_ms=10_000)


async def test_messages_past_the_size_limit_cross_a_cluster_through_a_key(
    tmp_path: Path, redis_cluster: RedisCluster
) -> None:
    """The large-message path on a cluster: the key must live on the primary
    that publishes the pointer (it shares the channel's hash slot)."""
    from tests.observability.common import scrape, value

    env = {**cluster_env(redis_cluster), "COLLAB_REDIS_MAX_MESSAGE_BYTES": "512"}
    async with instances(tmp_path, 2, env) as (a, b), js_client(tmp_path) as js:
        await js.call("connect", handle="a", url=a.ws_url, room="cluster/large")
        await js.call("connect", handle="b", url=b.ws_url, room="cluster/large")
        marks = tokens("big", 3)
        # Each insert is one update of ~2 KB, past the 512-byte limit. The next
        # waits until b has this one: the replicator merges what arrives in one
        # event-loop turn, and two inserts merged would be one large message.
        for i, mark in enumerate(marks):
            await js.call("insert", handle="a", text=mark + "x" * 2000)
            await converged(js, ["a", "b"], marks[: i + 1])
        assert value(await scrape(a.url), "collab_backplane_events_total", event="large") >= 3
        assert "cannot read a large message" not in a.log_text() + b.log_text()
