"""Faults while people type: Redis killed or frozen, an instance killed.

Pub/sub drops whatever is published while a link is down; anti-entropy after
every reconnect must bring it back (DESIGN.md §3, Redis). A killed instance
must not take with it anything the shared store acknowledged, and its
clients carry on through another instance behind the load balancer.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.observability.common import eventually
from tests.support.jsclient import JSClient

from .helpers import (
    T_MS,
    connections_opened,
    converged,
    found,
    instances,
    js_client,
    load_balancer,
    stored_marks,
    tokens,
    type_tokens,
    until_ready,
)

pytestmark = pytest.mark.anyio

AUTH_TOKEN = "elasticache-auth-token"
ROOM = "faults/doc"


async def type_and_signal(
    js: JSClient,
    handle: str,
    marks: list[str],
    after: int,
    reached: asyncio.Event,
    pause: float = 0.02,
) -> None:
    """Type ``marks``; set ``reached`` once ``after`` of them went out, so a
    fault lands while edits are still flowing."""
    for i, mark in enumerate(marks, 1):
        await js.call("insert", handle=handle, text=mark)
        if i == after:
            reached.set()
        await asyncio.sleep(pause)  # keystroke pacing, not a synchronisation point


@pytest.mark.parametrize("fault", ["sigkill", "sigstop"])
async def test_redis_fault_while_editing_loses_nothing(
    tmp_path: Path, redis_factory, fault: str
) -> None:
    redis = redis_factory(tls=True, password=AUTH_TOKEN)
    env = {"COLLAB_REDIS_URL": redis.url(), "COLLAB_STORE_URL": "memory://"}
    async with instances(tmp_path, 2, env) as (a, b), js_client(tmp_path) as js:
        await js.call("connect", handle="a1", url=a.ws_url, room=ROOM)
        await js.call("connect", handle="a2", url=a.ws_url, room=ROOM)
        await js.call("connect", handle="b1", url=b.ws_url, room=ROOM)
        everyone = ["a1", "a2", "b1"]

        # Both instances typing when the fault hits.
        in_flight = {h: tokens(f"{h}-during", 25) for h in ("a1", "b1")}
        hit = asyncio.Event()
        typing = [
            asyncio.create_task(type_and_signal(js, h, in_flight[h], 8, hit)) for h in in_flight
        ]
        await asyncio.wait_for(hit.wait(), 20)
        if fault == "sigkill":
            await redis.akill()
        else:
            # Frozen: TCP stays open, nothing answers. Only the unanswered
            # PING (socket timeout 1 s) tells; readiness failing proves it.
            redis.pause()
        try:
            for proc in (a, b):
                body = await until_ready(proc, 503)
                assert body["components"]["redis"]["status"] == "failing", body
            await asyncio.gather(*typing)

            # Local editing goes on while Redis is gone: same-instance peers sync.
            offline = {h: tokens(f"{h}-offline", 5) for h in ("a1", "b1")}
            await asyncio.gather(*(type_tokens(js, h, offline[h]) for h in offline))
            await js.call("wait_text", handle="a2", contains=offline["a1"], timeout_ms=T_MS)
        finally:
            if fault == "sigkill":
                await redis.arestart()
            else:
                redis.resume()
        for proc in (a, b):
            await until_ready(proc, 200)
        after = {h: tokens(f"{h}-after", 3) for h in ("a1", "b1")}
        await asyncio.gather(*(type_tokens(js, h, after[h]) for h in after))

        marks = [m for group in (in_flight, offline, after) for ms in group.values() for m in ms]
        await converged(js, everyone, marks)
        # A reconnect was logged with its cause on both instances.
        for proc in (a, b):
            assert "reconnect attempt" in proc.log_text()


async def test_killed_instance_loses_nothing_the_store_acknowledged(
    tmp_path: Path, redis_factory, postgres_url: str
) -> None:
    redis = redis_factory(tls=True, password=AUTH_TOKEN)
    env = {"COLLAB_REDIS_URL": redis.url(), "COLLAB_STORE_URL": postgres_url}
    async with instances(tmp_path, 2, env) as (a, b), js_client(tmp_path) as js:
        # The writer is on A only; B has never loaded the room, so what B
        # serves afterwards comes from the store, not from pub/sub.
        await js.call("connect", handle="w", url=a.ws_url, room=ROOM, reconnect=False)
        marks = tokens("w", 40)
        half = asyncio.Event()
        writer = asyncio.create_task(type_and_signal(js, "w", marks, 20, half))
        await asyncio.wait_for(half.wait(), 20)
        async with stored_marks(postgres_url) as stored:
            # At least one batch written before the kill (another process's
            # writes: polled).
            acknowledged = await eventually(lambda: stored(ROOM), bool, timeout=20)
        await a.kill()  # SIGKILL mid-edit: no drain, no final flush
        await asyncio.wait_for(writer, 20)

        await js.call("connect", handle="fresh", url=b.ws_url, room=ROOM)
        text = await js.call("text", handle="fresh")
        lost = acknowledged - found(text)
        assert not lost, f"acknowledged by the store, then lost: {sorted(lost)}"
        assert found(text) <= set(marks)


async def test_clients_of_a_killed_instance_carry_on_through_another(
    tmp_path: Path, redis_factory, postgres_url: str
) -> None:
    redis = redis_factory(tls=True, password=AUTH_TOKEN)
    env = {"COLLAB_REDIS_URL": redis.url(), "COLLAB_STORE_URL": postgres_url}
    async with (
        instances(tmp_path, 2, env) as procs,
        js_client(tmp_path) as js,
        load_balancer(tmp_path, procs) as lb_url,
    ):
        await js.call("connect", handle="x", url=lb_url, room=ROOM, max_backoff_ms=300)
        victim = next(p for p in procs if connections_opened(p, ROOM))
        survivor = next(p for p in procs if p is not victim)
        await js.call("connect", handle="y", url=survivor.ws_url, room=ROOM)

        marks = {h: tokens(h, 30) for h in ("x", "y")}
        hit = asyncio.Event()
        typing = [asyncio.create_task(type_and_signal(js, h, marks[h], 10, hit)) for h in marks]
        await asyncio.wait_for(hit.wait(), 20)
        await victim.kill()
        await asyncio.gather(*typing)

        # x's provider reconnected through the balancer, to the survivor.
        await js.call("wait_synced", handle="x", timeout_ms=T_MS)
        all_marks = marks["x"] + marks["y"]
        final = await converged(js, ["x", "y"], all_marks)
        assert len(connections_opened(survivor, ROOM)) >= 2
        await js.call("connect", handle="fresh", url=lb_url, room=ROOM)
        await js.call("wait_text", handle="fresh", equals=final, timeout_ms=T_MS)
        # And the survivor stored it all (its batched writes: polled).
        async with stored_marks(postgres_url) as stored:
            await eventually(lambda: stored(ROOM), lambda got: set(all_marks) <= got, timeout=20)
