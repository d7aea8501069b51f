"""Hocuspocus sockets are accepted before any token, so what they may queue
before authentication is bounded in time (COLLAB_AUTH_TIMEOUT: close 4408)
and over the whole process (COLLAB_AUTH_QUEUE_TOTAL_BYTES: close 1013), not
only per socket; the room's clients keep converging and memory stays put."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import websockets

from collab.wire import hocuspocus as hp
from tests.limits.helpers import MiB, close_of, metric, pair, settled_rss, still_converging
from tests.support.servers import run_collab

pytestmark = pytest.mark.anyio

UPDATE = hp.encode_update("doc", b"\x01" + b"\x00" * 1_000_000)  # ~1 MB, never authenticated


async def test_unauthenticated_sockets_are_timed_out_and_bounded_overall(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_LOG_LEVEL": "warning",
        "COLLAB_HOOKS": "tests.core.hooks_fixture:hooks",
        "COLLAB_AUTH_TIMEOUT": "5",
        "COLLAB_AUTH_QUEUE_TOTAL_BYTES": str(5 * MiB),
    }
    async with run_collab(tmp_path, env=env) as srv:
        async with pair(f"{srv.ws_url}/shared?token=writer") as (a, b):
            baseline = await settled_rss(srv)
            async with contextlib.AsyncExitStack() as stack:
                parked = [
                    await stack.enter_async_context(
                        websockets.connect(f"{srv.ws_url}/hocuspocus", max_size=None)
                    )
                    for _ in range(4)
                ]
                codes = []
                for ws in parked:  # 2 MB each: the third socket passes 5 MiB in all
                    with contextlib.suppress(websockets.ConnectionClosed):
                        for _ in range(2):
                            await ws.send(UPDATE)
                        # One socket's frames are handled in order: its Pong
                        # means both were, before the next socket sends.
                        await ws.send(hp.PING)
                        assert await ws.recv() == hp.PONG
                codes = [(await close_of(ws))[0] for ws in parked]
                await still_converging(a, b, "during")
            # two fit, and are timed out; the others were refused at the overall bound
            assert sorted(codes) == [1013, 1013, 4408, 4408], codes
            assert (
                await metric(
                    srv,
                    "collab_frames_rejected_total",
                    endpoint="hocuspocus",
                    reason="auth_timeout",
                )
                == 2
            )
            grown = await settled_rss(srv) - baseline
            assert grown < 16 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
            # an authenticating provider is unaffected
            async with websockets.connect(f"{srv.ws_url}/hocuspocus") as ws:
                await ws.send(hp.encode_auth_token("shared", "writer", "4.8.0"))
                assert hp.decode_frame(await ws.recv()) == hp.Authenticated("shared", "read-write")
