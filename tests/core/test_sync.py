"""Sync and awareness with real clients against a real uvicorn server."""

from __future__ import annotations

import asyncio

import pytest
import websockets

from collab.client import YClient
from collab.wire import awareness as aw
from collab.wire import ywebsocket as p

from .helpers import converge, serve, text_of

pytestmark = pytest.mark.anyio


async def test_concurrent_edits_converge_and_late_joiner_gets_everything() -> None:
    async with serve() as srv:
        url = f"{srv.ws_url}/team/notes"
        async with YClient(url) as a, YClient(url) as b:
            for i in range(20):
                a.text().insert(0, f"a{i};")
                b.text().insert(len(b.text()), f"b{i};")
            final = await converge([a, b])
            assert all(f"a{i};" in final and f"b{i};" in final for i in range(20))
        assert await text_of(url) == final


async def test_twenty_clients_open_a_brand_new_room_at_once() -> None:
    async with serve() as srv:
        url = f"{srv.ws_url}/fresh-room"
        clients = [YClient(url, reconnect=False) for _ in range(20)]
        await asyncio.gather(*(c.start() for c in clients))
        await asyncio.wait_for(asyncio.gather(*(c.synced.wait() for c in clients)), 10)
        clients[7].text().insert(0, "seen by all")
        await asyncio.wait_for(
            asyncio.gather(
                *(c.wait_for(lambda cc: str(cc.text()) == "seen by all", 10) for c in clients)
            ),
            10,
        )
        await asyncio.gather(*(c.close() for c in clients))


async def test_awareness_appears_and_disappears_when_its_socket_closes() -> None:
    async with serve() as srv:
        url = f"{srv.ws_url}/presence"
        async with YClient(url) as watcher:
            a = YClient(url)
            await a.__aenter__()
            await a.set_awareness({"user": {"name": "ada"}})
            cid = a.doc.client_id
            await watcher.wait_for(lambda c: cid in c.awareness, 5)
            assert watcher.awareness[cid] == {"user": {"name": "ada"}}
            # a late joiner receives current awareness on join
            async with YClient(url) as late:
                await late.wait_for(lambda c: cid in c.awareness, 5)
            await a.close()  # the socket closes without an explicit removal
            await watcher.wait_for(lambda c: cid not in c.awareness, 5)


async def test_query_awareness_is_answered_with_all_states() -> None:
    async with serve() as srv:
        url = f"{srv.ws_url}/q"
        async with YClient(url) as a:
            await a.set_awareness({"n": 1})
            async with websockets.connect(url) as ws:
                await ws.recv()  # step1
                # the join may already carry awareness; ask explicitly anyway
                await ws.send(p.encode_query_awareness())
                async with asyncio.timeout(5):
                    while True:
                        msg = p.decode_message(await ws.recv())
                        if isinstance(msg, p.Awareness) and a.doc.client_id in {
                            e.client_id for e in aw.decode_update(msg.update)
                        }:
                            break


async def test_rooms_are_isolated_and_names_may_contain_slashes() -> None:
    async with serve() as srv:
        async with YClient(f"{srv.ws_url}/org/a") as a, YClient(f"{srv.ws_url}/org/b") as b:
            a.text().insert(0, "only in a")
            await a.wait_for(lambda c: True, 1)
        assert await text_of(f"{srv.ws_url}/org/a") == "only in a"
        assert await text_of(f"{srv.ws_url}/org/b") == ""
        del b
