"""COLLAB_MAX_DOCUMENT_BYTES: a flood of updates past the cap is refused with
1009, the document and its other clients untouched, and the server's memory
bounded by the cap, not by the flood; a document stored past the cap is
served read-only."""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets

from collab.client import YClient
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

pytestmark = pytest.mark.anyio

CAP = 4 * MiB
UPDATE = 512 * 1024  # text bytes per flood update: 200 of them = 100 MiB, 25 x the cap
ENV = {
    "COLLAB_STORE_URL": "memory://",
    "COLLAB_MAX_DOCUMENT_BYTES": str(CAP),
    "COLLAB_MAX_FRAME_BYTES": str(MiB),
    "COLLAB_LOG_LEVEL": "warning",
}


async def test_a_200_update_flood_past_the_cap_is_1009_and_memory_stays_bounded(
    tmp_path: Path,
) -> None:
    async with run_collab(tmp_path, env=ENV) as srv:
        url = f"{srv.ws_url}/flood"
        async with pair(url) as (a, b):
            await still_converging(a, b, "before")
            baseline = await settled_rss(srv)
            async with websockets.connect(url, max_size=None) as ws:
                await ws.recv()  # our step1
                # Written without waiting for anything: the flood is in flight
                # when the server refuses the update that passes the cap.
                for i in range(200):
                    frame = p.encode_update(inserting(f"{i:03d}" + "x" * UPDATE))
                    try:
                        await ws.send(frame)
                    except websockets.ConnectionClosed:
                        break
                code, reason = await close_of(ws)
            assert (code, reason) == (1009, "document too large")
            sent_before_close = i
            assert sent_before_close < 200 or code == 1009
            # The other clients were not touched and keep working together.
            await still_converging(a, b, "after")
            # A later update from another socket is refused at once, too.
            async with websockets.connect(url, max_size=None) as ws:
                await ws.recv()
                await ws.send(p.encode_update(inserting("y" * UPDATE)))
                assert await close_of(ws) == (1009, "document too large")
            size = len(str(a.text()))
            assert size <= CAP
            async with YClient(url, reconnect=False) as fresh:
                assert str(fresh.text()) == str(a.text())  # the refused updates are nowhere
            grown = await settled_rss(srv) - baseline
            # The document is at most CAP; the 100 MiB flood must not show.
            assert grown < 8 * CAP, f"RSS grew {grown / MiB:.1f} MiB"
        assert await metric(srv, "collab_connection_closes_total", code="1009") >= 2
        assert await metric(srv, "collab_frames_rejected_total", reason="TooLarge") >= 2


async def test_a_document_stored_past_the_cap_is_served_read_only(tmp_path: Path) -> None:
    env = {
        **ENV,
        "COLLAB_STORE_URL": "sqlite:///docs.sqlite3",
        "COLLAB_MAX_DOCUMENT_BYTES": "0",
        "COLLAB_MAX_FRAME_BYTES": str(4 * MiB),
    }
    async with run_collab(tmp_path, env=env) as srv:
        async with pair(f"{srv.ws_url}/big") as (a, b):
            a.text().insert(0, "z" * (2 * MiB))
            await b.wait_for(lambda c: len(str(c.text())) == 2 * MiB, 15)  # the server has it
        assert await srv.terminate() == 0  # stored on the way out
    env["COLLAB_MAX_DOCUMENT_BYTES"] = str(MiB)
    async with run_collab(tmp_path, env=env) as srv:
        url = f"{srv.ws_url}/big"
        async with YClient(url, reconnect=False) as c:
            assert len(str(c.text())) == 2 * MiB  # still served
            c.text().insert(0, "edit ")
            log = await srv.wait_for_log("served read-only")
            assert "'big'" in log
            assert await metric(srv, "collab_oversized_rooms") == 1
            async with YClient(url, reconnect=False) as other:
                assert not str(other.text()).startswith("edit")
