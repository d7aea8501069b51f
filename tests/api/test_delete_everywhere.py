"""Deleting a room reaches every instance: two in-process servers sharing a
store and a memory backplane. The instance that did not take the call
closes its sockets and drops the room unstored, so nothing writes the
deleted document back; its unwritten edits are not stored either."""

from __future__ import annotations

import asyncio

import pytest
from pycrdt import Text

from collab.backplane.memory import MemoryBackplane, MemoryHub
from collab.client import YClient
from collab.stores.memory import MemoryStore
from tests.support.waiting import wait_until

from .helpers import api, serve, settings, text_in

pytestmark = pytest.mark.anyio


async def test_delete_on_a_closes_and_forgets_the_room_on_b() -> None:
    hub, store = MemoryHub(), MemoryStore()
    # A long debounce on B: its client's edit is still unwritten when the delete comes.
    slow = settings(flush_debounce=30, flush_max_wait=30)
    async with (
        serve(store=store, backplane=MemoryBackplane(hub)) as a,
        serve(slow, store=store, backplane=MemoryBackplane(hub)) as b,
    ):
        await api(a).edit_text("shared", "stored ")
        client = YClient(f"{b.ws_url}/shared", reconnect=False)
        await client.start()
        await asyncio.wait_for(client.synced.wait(), 5)
        client.text().insert(len(client.text()), "unwritten")
        b_rooms = b.app.state.collab.rooms
        await wait_until(
            lambda: "unwritten" in str(b_rooms.get("shared").doc.get("text", type=Text))
        )
        result = await api(a).delete_room("shared")
        assert (result["closed_here"], result["deleted"]) == (0, True)
        await client.wait_closed(5)
        assert client.close_code == 4404
        await wait_until(lambda: "shared" not in b_rooms, timeout=5, what="B forgot the room")
        assert await store.load("shared") is None
        # B's writer dropped the edit it had not stored: nothing comes back.
        assert not b.app.state.collab.writer._pending
        await api(b).edit_text("other", "x")  # B keeps working
        assert text_in(await store.load("other") or b"") == "x"
        assert await store.load("shared") is None
