"""The cluster backplane's own rules: one slot per room whatever its name,
settings a cluster cannot honour refused at load, failures named by node, and
a subscription that follows its slot to a new primary by itself."""

from __future__ import annotations

import asyncio

import pytest
from redis.crc import key_slot

from collab.backplane import MemoryBackplane, MemoryHub, Replicator
from collab.backplane.redis_cluster import RedisClusterBackplane
from collab.backplane.redis_options import RedisOptions
from collab.backplane.redis_shards import node_options
from collab.config import RedisSettings, Settings
from collab.errors import ConfigError
from collab.observability.health import Health
from tests.support.redis_cluster import RedisCluster
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("room", ["notes", "a}b", "{x}", "}", "deep/path/{with}/braces"])
def test_every_key_of_a_room_shares_the_channel_slot(room: str) -> None:
    rep = Replicator(MemoryBackplane(MemoryHub()), prefix="collab", instance_id="i", hash_tag=True)
    channel = rep.channel(room)
    assert channel.startswith("{collab:room:")
    assert key_slot(channel.encode()) == key_slot(f"{channel}:state".encode())
    plain = Replicator(MemoryBackplane(MemoryHub()), prefix="collab", instance_id="i")
    assert plain.channel(room) == f"collab:room:{room}"  # one Redis: unchanged


def test_settings_a_cluster_cannot_honour_are_refused() -> None:
    with pytest.raises(ConfigError, match="only database 0"):
        RedisSettings(url="rediss://h:6379/1", cluster=True)
    with pytest.raises(ConfigError, match="may not contain"):
        RedisSettings(url="rediss://h:6379/0", cluster=True, prefix="{collab}")
    parsed = Settings.from_env({"COLLAB_REDIS_URL": "rediss://h:6379", "COLLAB_REDIS_CLUSTER": "1"})
    assert parsed.redis.cluster is True


def test_node_options_keep_the_credentials_and_name_the_node() -> None:
    opts = RedisOptions(
        "rediss://app:s3cret@config.example:6379/0?ssl_ca_certs=/ca.pem", cluster=True
    )
    node = node_options(opts, "10.0.0.7:6380")
    assert node.address == "10.0.0.7:6380"
    assert node.connection_kwargs()["password"] == "s3cret"
    assert "s3cret" not in node.safe_url and "10.0.0.7:6380" in node.safe_url
    assert "ssl" in opts.cluster_kwargs() and "db" not in opts.cluster_kwargs()


async def test_subscription_follows_its_slot_to_a_new_primary(redis_cluster: RedisCluster) -> None:
    options = RedisOptions(
        redis_cluster.url(username="app"),
        backoff_base=0.05,
        backoff_cap=0.5,
        socket_timeout=2.0,
        cluster=True,
    )
    a = RedisClusterBackplane(options, health=Health())
    b = RedisClusterBackplane(options, health=Health())
    channel = "{collab:room:follow-me}"
    got: list[bytes] = []
    resyncs: list[int] = []

    async def resynced() -> None:
        resyncs.append(1)

    b.add_resubscribed_callback(resynced)
    try:
        await a.start()
        await b.start()
        await b.subscribe(channel, got.append)
        await a.subscribe(channel, lambda _: None)  # so that a follows the move too
        a.publish(channel, b"before")
        await wait_until(lambda: got == [b"before"], what="delivery before the move")
        owner = await asyncio.to_thread(redis_cluster.owner, channel)
        target = next(p for p in await asyncio.to_thread(redis_cluster.primaries) if p is not owner)
        before = len(resyncs)
        await asyncio.to_thread(redis_cluster.move_slot, key_slot(channel.encode()), target)
        # Nobody told it: SUNSUBSCRIBE from the old owner, then the new one.
        await wait_until(
            lambda: a.moves >= 1 and b.moves >= 1 and len(resyncs) > before,
            what="re-subscribed on the new owner, then anti-entropy",
        )
        assert b.health.ready
        # (What a published meanwhile may be lost: that is what the resync is for.)
        a.publish(channel, b"after")
        await wait_until(lambda: got[-1:] == [b"after"], what="delivery after the move")
    finally:
        await a.stop()
        await b.stop()
