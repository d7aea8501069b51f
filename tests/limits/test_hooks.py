"""COLLAB_HOOK_TIMEOUT and failing hooks: a hook that never answers is a
failing hook (4401 for authenticate, logged by name), one that raises is
logged; neither holds a socket, a room or a task per edit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import websockets

from collab.hooks import CHANGE_BACKLOG, ChangeEvent, HookRunner, Hooks
from collab.rooms.room import PeerOrigin, Room
from collab.wire import ywebsocket as p
from tests.limits.helpers import (
    MiB,
    close_of,
    inserting,
    metric,
    pair,
    settled_rss,
    still_converging,
)
from tests.support.servers import run_collab
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


async def closed_with_token(url: str, token: str) -> tuple[int, str]:
    async with websockets.connect(f"{url}?token={token}", max_size=None) as ws:
        return await close_of(ws)


async def test_hooks_that_hang_or_raise_fail_without_taking_anything_down(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_HOOK_TIMEOUT": "1",
        "COLLAB_HOOKS": "tests.limits.hooks_fixture:hooks",
    }
    async with run_collab(tmp_path, env=env) as srv:
        async with asyncio.timeout(10):
            assert await closed_with_token(f"{srv.ws_url}/doc", "hang") == (
                4401,
                "authentication timed out",
            )
        log = await srv.wait_for_log("authenticate hook did not answer within 1s")
        assert "conn_id=c-" in log.split("authenticate hook did not answer")[1].splitlines()[0]
        assert await closed_with_token(f"{srv.ws_url}/doc", "boom") == (
            1011,
            "authentication failed",
        )
        await srv.wait_for_log("authenticate hook failed")
        for room in ("raise/r", "hang/r"):
            async with pair(f"{srv.ws_url}/{room}") as (a, b):
                baseline = await settled_rss(srv)
                async with websockets.connect(f"{srv.ws_url}/{room}", max_size=None) as ws:
                    await ws.recv()
                    for i in range(1500):  # 1,500 edits (under the frame rate), each a failing call
                        await ws.send(p.encode_update(inserting(f"{i} ", client_id=i + 1)))
                await still_converging(a, b, room)
                grown = await settled_rss(srv) - baseline
                assert grown < 32 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
        await srv.wait_for_log("on_change hook did not answer within 1s")
        assert (
            await metric(srv, "collab_hook_failures_total", hook="on_change", cause="raised") >= 1
        )
        assert (
            await metric(srv, "collab_hook_failures_total", hook="on_change", cause="timeout") >= 1
        )
        assert await metric(srv, "collab_hook_failures_total", hook="authenticate") == 2
        # A hook stuck forever does not hold shutdown either.
        assert await srv.terminate(timeout=15) == 0


async def test_a_raising_on_change_costs_one_task_and_a_bounded_queue() -> None:
    calls = 0

    async def on_change(event: ChangeEvent) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("webhook failed")

    dropped: list[int] = []
    runner = HookRunner(Hooks(on_change=on_change), timeout=1, on_dropped=lambda: dropped.append(1))
    room = Room("r")
    for _ in range(5 * CHANGE_BACKLOG):
        runner.room_update(room, b"\x00\x00", PeerOrigin("p"))
        assert runner.running <= 1 and runner.pending_changes <= CHANGE_BACKLOG
    assert len(dropped) == 4 * CHANGE_BACKLOG
    await wait_until(lambda: not runner.running, timeout=10, what="the runner to drain")
    assert calls == CHANGE_BACKLOG and runner.pending_changes == 0
    await runner.aclose()
