"""Rooms shared through a backplane: the replicator over the memory backplane.

Two (or three) CollabServers in one process share a MemoryHub, as instances
share Redis. Peers are plain recorders; edits go in through the room as a
socket's would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab import create_app
from collab.backplane import MemoryBackplane, MemoryHub
from collab.backplane.replicator import Replicator
from collab.config import Settings
from collab.hocuspocus.codec import CODEC as HOCUSPOCUS_CODEC
from collab.observability.metrics import Metrics
from collab.rooms.room import Codec, PeerOrigin, Room
from collab.server import CollabServer
from collab.stores.memory import MemoryStore
from collab.wire import awareness as aw
from collab.wire import backplane as rp
from collab.wire import hocuspocus as hp
from collab.ywebsocket.codec import CODEC
from tests.support.peers import RecordingPeer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


class Instance:
    def __init__(
        self,
        server: CollabServer,
        backplane: MemoryBackplane,
        replicator: Replicator,
        metrics: Metrics,
    ) -> None:
        self.server = server
        self.backplane = backplane
        self.replicator = replicator
        self.metrics = metrics
        self.sent: list[rp.Message] = []
        real_publish = backplane.publish

        def publish(channel: str, payload: bytes) -> None:
            if backplane.connected and payload[:1] in b"\x01\x02\x03\x04\x05":
                self.sent.append(rp.decode(payload))
            real_publish(channel, payload)

        backplane.publish = publish  # type: ignore[method-assign]

    async def join(
        self, room: str, peer_id: str, codec: Codec = CODEC
    ) -> tuple[Room, RecordingPeer]:
        peer = RecordingPeer(peer_id, codec=codec)
        return await self.server.rooms.join(room, peer), peer

    def sent_kinds(self) -> list[str]:
        return [type(m).__name__ for m in self.sent]


@asynccontextmanager
async def instance(
    hub: MemoryHub, name: str, store: MemoryStore | None = None
) -> AsyncIterator[Instance]:
    settings = Settings(
        store_url="memory://",
        instance_id=name,
        room_grace=0.05,
        flush_debounce=0.01,
        flush_max_wait=0.05,
    )
    backplane = MemoryBackplane(hub)
    app = create_app(settings, store=store or MemoryStore(), backplane=backplane)
    async with app.router.lifespan_context(app):
        yield Instance(app.state.collab, backplane, app.state.replicator, app.state.metrics)


@asynccontextmanager
async def cluster(*names: str) -> AsyncIterator[list[Instance]]:
    hub = MemoryHub()
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(instance(hub, n)) for n in names]


def edit(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("text", type=Text).insert(0, text)
    return doc.get_update()


def text(room: Room) -> str:
    return str(room.doc.get("text", type=Text))


async def subscribed(inst: Instance, room: str) -> None:
    await wait_until(lambda: inst.replicator.channel(room) in inst.backplane.handlers)


async def both_joined(a: Instance, b: Instance) -> tuple[Room, RecordingPeer, Room, RecordingPeer]:
    """Peer "pa" on A and "pb" on B in room "doc", both rooms subscribed."""
    room_a, peer_a = await a.join("doc", "pa")
    room_b, peer_b = await b.join("doc", "pb")
    await subscribed(a, "doc")
    await subscribed(b, "doc")
    return room_a, peer_a, room_b, peer_b


async def test_two_instances_converge() -> None:
    async with cluster("A", "B") as (a, b):
        room_a, peer_a, room_b, peer_b = await both_joined(a, b)
        room_a.sync_update(peer_a, edit("<from A>"))
        room_b.sync_update(peer_b, edit("<from B>"))
        await wait_until(lambda: "<from A>" in text(room_b) and "<from B>" in text(room_a))
        assert text(room_a) == text(room_b)
        # B's socket gets A's change as an ordinary update frame (fan-out may
        # trail the document by the room's fan-out window).
        await wait_until(lambda: any(f.startswith(b"\x00\x02") for f in peer_b.frames))


async def test_remote_changes_are_never_published_back() -> None:
    async with cluster("A", "B") as (a, b):
        room_a, peer_a, room_b, _ = await both_joined(a, b)
        a.sent.clear()
        b.sent.clear()
        room_a.sync_update(peer_a, edit("x"))
        await wait_until(lambda: text(room_b) == "x")
        # A second edit, behind the first on the same path: by the time B has
        # it, an echo of "x" from B (published on the loop turn after B
        # applied it) would have gone out.
        room_a.sync_update(peer_a, edit("y"))
        await wait_until(lambda: "y" in text(room_b))
        assert a.sent_kinds() == ["Update", "Update"]
        assert b.sent == []
        update = a.sent[0]
        assert isinstance(update, rp.Update)
        assert update.sender == "A" and update.connection == "pa"


async def test_a_burst_is_published_as_one_merged_update() -> None:
    async with cluster("A", "B") as (a, b):
        room_a, peer_a, room_b, _ = await both_joined(a, b)
        a.sent.clear()
        for i in range(20):
            room_a.sync_update(peer_a, edit(f"<{i}>"))
        await wait_until(lambda: all(f"<{i}>" in text(room_b) for i in range(20)))
        assert a.sent_kinds() == ["Update"]


async def test_store_loaded_content_is_not_published() -> None:
    hub = MemoryHub()
    store = MemoryStore()
    await store.append("doc", edit("stored"))
    async with instance(hub, "A", store) as a:
        room, _ = await a.join("doc", "pa")
        await subscribed(a, "doc")
        assert text(room) == "stored"
        assert "Update" not in a.sent_kinds()


async def test_late_instance_gets_the_document_by_anti_entropy() -> None:
    async with cluster("A", "B") as (a, b):
        room_a, peer_a = await a.join("doc", "pa")
        room_a.sync_update(peer_a, edit("written before B had the room"))
        room_b, _ = await b.join("doc", "pb")  # B's own store knows nothing
        await wait_until(lambda: text(room_b) == "written before B had the room")
        assert "SyncRequest" in b.sent_kinds()
        assert "SyncReply" in a.sent_kinds()


async def test_anti_entropy_sends_back_what_the_replier_lacks() -> None:
    """Both sides hold something the other lacks (edits made while apart)."""
    async with cluster("A", "B") as (a, b):
        room_a, peer_a, room_b, peer_b = await both_joined(a, b)
        b.backplane.disconnect()
        room_a.sync_update(peer_a, edit("<A while apart>"))
        room_b.sync_update(peer_b, edit("<B while apart>"))
        # Both sides have published (B's dropped at its end, A's delivered
        # to connected members only); nothing can arrive after that.
        await wait_until(lambda: b.backplane.dropped >= 1 and "Update" in a.sent_kinds())
        assert "<A while apart>" not in text(room_b)
        assert "<B while apart>" not in text(room_a)
        await b.backplane.reconnect()
        await wait_until(
            lambda: (
                text(room_a) == text(room_b)
                and "<A while apart>" in text(room_a)
                and "<B while apart>" in text(room_a)
            )
        )


async def test_three_instances_recover_after_one_reconnects() -> None:
    async with cluster("A", "B", "C") as insts:
        rooms = []
        for inst in insts:
            rooms.append(await inst.join("doc", f"p{inst.server.settings.instance_id}"))
        for inst in insts:
            await subscribed(inst, "doc")
        insts[2].backplane.disconnect()
        for i, (room, peer) in enumerate(rooms):
            room.sync_update(peer, edit(f"<{i}>"))
        await insts[2].backplane.reconnect()
        await wait_until(
            lambda: all(all(f"<{i}>" in text(room) for i in range(3)) for room, _ in rooms)
        )


async def test_awareness_crosses_and_its_removal_too() -> None:
    async with cluster("A", "B") as (a, b):
        room_a, peer_a, room_b, _ = await both_joined(a, b)
        room_a.peer_awareness(peer_a, aw.encode_update([aw.Entry(7, 1, '{"user":"ann"}')]))
        await wait_until(lambda: [e.client_id for e in room_b.awareness.snapshot()] == [7])
        a.server.rooms.leave("doc", peer_a)  # the socket closed: its client is removed everywhere
        await wait_until(lambda: len(room_b.awareness) == 0)


async def test_cursors_reach_late_and_reconnected_instances() -> None:
    async with cluster("A", "B") as (a, b):
        room_a, peer_a = await a.join("doc", "pa")
        await subscribed(a, "doc")
        room_a.peer_awareness(peer_a, aw.encode_update([aw.Entry(7, 3, '{"user":"ann"}')]))
        # B loads the room later: A answers its SYNC_REQUEST with A's local cursors.
        room_b, peer_b = await b.join("doc", "pb")
        await wait_until(
            lambda: [(e.client_id, e.clock) for e in room_b.awareness.snapshot()] == [(7, 3)]
        )
        # A cursor set on B while its link was down reaches A after the reconnect.
        b.backplane.disconnect()
        dropped = b.backplane.dropped
        room_b.peer_awareness(peer_b, aw.encode_update([aw.Entry(8, 1, '{"user":"bob"}')]))
        await wait_until(lambda: b.backplane.dropped > dropped)  # B's publish went nowhere
        assert 8 not in {e.client_id for e in room_a.awareness.snapshot()}
        await b.backplane.reconnect()
        await wait_until(lambda: 8 in {e.client_id for e in room_a.awareness.snapshot()})


async def test_stateless_messages_cross() -> None:
    async with cluster("A", "B") as (a, b):
        await both_joined(a, b)
        _, listener = await b.join("doc", "pb-hocuspocus", HOCUSPOCUS_CODEC)
        assert a.server.send_stateless("doc", "hello from A")
        stateless = hp.encode_stateless("doc", "hello from A")
        await wait_until(lambda: stateless in listener.frames)
        # A re-publish would have happened in the same call that fed `got`.
        assert [m for m in b.sent if isinstance(m, rp.Stateless)] == []


async def test_invalid_messages_are_counted_not_fatal() -> None:
    async with cluster("A", "B") as (a, b):
        room_b, _ = await b.join("doc", "pb")
        await subscribed(b, "doc")
        channel = b.replicator.channel("doc")
        a.backplane.publish(channel, b"\x09garbage")
        a.backplane.publish(channel, rp.encode(rp.Update("A", b"\x01\x02\x03")))
        a.backplane.publish(channel, rp.encode(rp.Awareness("A", b"\x01\x01\x01\x03{x}")))
        counter = b.metrics.backplane_events.labels("invalid")
        await wait_until(lambda: counter._value.get() == 3)
        room_a, peer_a = await a.join("doc", "pa")
        room_a.sync_update(peer_a, edit("still fine"))
        await wait_until(lambda: text(room_b) == "still fine")


async def test_unloaded_room_is_unsubscribed() -> None:
    async with cluster("A") as (a,):
        room, peer = await a.join("doc", "pa")
        await subscribed(a, "doc")
        a.server.rooms.leave("doc", peer)
        await wait_until(lambda: "doc" not in a.server.rooms)
        assert a.replicator.channel("doc") not in a.backplane.handlers
        assert "doc" not in a.replicator.links
        # The replicator no longer publishes what reaches the old room object.
        assert a.replicator._linked(room, PeerOrigin("pa")) is None
