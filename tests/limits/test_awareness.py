"""Awareness under attack, against real y-websocket providers: a raw socket
may neither move nor evict someone else's cursor, cannot leave orphans
behind, and is closed for states a browser cannot take (1007), too large
(1009) or too many ids (1008); a flood of states is paced."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
import websockets

from collab.wire import awareness as aw
from collab.wire import ywebsocket as p
from tests.limits.helpers import MiB, close_of, settled_rss
from tests.support.jsclient import JSClient
from tests.support.servers import run_collab

pytestmark = pytest.mark.anyio


def frame(*entries: tuple[int, int, str]) -> bytes:
    return p.encode_awareness(aw.encode_update([aw.Entry(*e) for e in entries]))


async def attack(url: str, *frames: bytes) -> tuple[int, str]:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        for f in frames:
            await ws.send(f)
        await ws.close()
        return await close_of(ws) if ws.close_code is None else (ws.close_code, "")


async def closed_by(url: str, *frames: bytes) -> tuple[int, str]:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.recv()
        for f in frames:
            await ws.send(f)
        return await close_of(ws)


async def test_spoofing_and_orphaning_fail_and_bad_states_close(tmp_path: Path) -> None:
    env = {"COLLAB_STORE_URL": "memory://", "COLLAB_LOG_LEVEL": "info"}
    async with run_collab(tmp_path, env=env) as srv, JSClient.start(tmp_path) as js:
        url = f"{srv.ws_url}/aw"
        ada = (await js.call("connect", handle="ada", url=srv.ws_url, room="aw"))["client_id"]
        await js.call("connect", handle="w", url=srv.ws_url, room="aw")
        await js.call("set_awareness", handle="ada", value={"name": "ada"})
        await js.call("wait_awareness", handle="w", value="ada")

        # Spoofing: take over ada's cursor, then evict it; orphaning: a state
        # set and removed (with an older clock) in one frame, then leave.
        mallory = json.dumps({"user": {"name": "mallory"}})
        await attack(
            url,
            frame((ada, 999, mallory)),
            frame((ada, 1000, "null")),
            frame((424242, 5, mallory), (424242, 3, "null")),
        )
        # The orphan attempt's state is removed when its socket closes.
        await js.call("wait_awareness", handle="w", value="mallory", present=False)
        await js.call("set_awareness", handle="ada", value={"name": "ada2"})  # a later event
        states: dict[str, Any] = await js.call("wait_awareness", handle="w", value="ada2")
        assert str(424242) not in states
        names = [s.get("user", {}).get("name") for s in states.values() if s]
        assert names == ["ada2"], states

        # States a browser cannot take: 1007, without a traceback.
        for bad in ("NaN", '{"x": 1e999}', "[" * 5000 + "]" * 5000):
            assert (await closed_by(url, frame((777, 1, bad))))[0] == 1007
        assert (await closed_by(url, frame((2**53, 1, "{}"))))[0] == 1007
        code, reason = await closed_by(url, frame((778, 1, json.dumps("x" * MiB))))
        assert code == 1009 and "awareness state" in reason
        code, reason = await closed_by(url, frame(*((900 + i, 1, "{}") for i in range(9))))
        assert code == 1008 and "awareness clients" in reason
        log = srv.log_text()
        assert "RecursionError" not in log and "Traceback" not in log

        text = await js.call("text", handle="w")
        assert text == ""  # the document was never touched


async def test_a_flood_of_large_states_is_paced_removed_and_bounded(tmp_path: Path) -> None:
    async with run_collab(tmp_path, env={"COLLAB_STORE_URL": "memory://"}) as srv:
        url = f"{srv.ws_url}/aw"
        # A flood of large legitimate states: paced (a raw watcher counts the
        # frames), removed when its socket closes, and memory stays put.
        baseline = await settled_rss(srv)
        big = json.dumps({"user": {"name": "flood", "pad": "x" * 60_000}})
        async with websockets.connect(url, max_size=None) as watcher:
            await watcher.recv()
            await attack(url, *(frame((555, i, big)) for i in range(1, 151)))
            relayed = 0
            async with asyncio.timeout(20):
                while True:
                    msg = p.decode_message(await watcher.recv())
                    if not isinstance(msg, p.Awareness):
                        continue
                    entries = [e for e in aw.decode_update(msg.update) if e.client_id == 555]
                    relayed += bool(entries)
                    if any(e.state == aw.NULL_STATE for e in entries):
                        break
        assert relayed < 150  # merged while the flood lasted
        grown = await settled_rss(srv) - baseline
        assert grown < 16 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
