"""Rooms shared between instances through a :class:`~collab.backplane.Backplane`.

The replicator knows rooms and the message format, not Redis. While a room is
loaded it is subscribed to ``<prefix>:room:<name>``:

- outbound: every update, awareness change and stateless message whose origin
  is a local peer is published (a change that came from the backplane carries
  ``RemoteOrigin`` and is never published back; one loaded from the store
  carries ``StoreOrigin`` and every instance has it already);
- inbound: updates are applied with ``RemoteOrigin``, so local peers get them
  and the store writer persists them too (every instance persists what it
  receives: duplicates vanish in the squash, and an update survives the
  crash of the instance that took it);
- anti-entropy: when the room subscribes, and after every backplane
  reconnect, the instance publishes SYNC_REQUEST with its state vector. Each
  other instance answers SYNC_REPLY with what the requester lacks and its own
  state vector; the requester applies that and publishes what the replier
  lacks. Pub/sub loses what is published while a link is down; this exchange
  is what makes that loss temporary. The local awareness is published too, so
  cursors reach instances that joined late.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from pycrdt import merge_updates

from . import awareness as aw
from . import replication_protocol as rp
from .backplane import Backplane
from .errors import BackplaneError, CloseError
from .room import (
    AwarenessListener,
    Origin,
    PeerOrigin,
    RemoteOrigin,
    Room,
    StatelessListener,
    StoreOrigin,
    UpdateListener,
)

if TYPE_CHECKING:
    from .server import CollabServer

log = logging.getLogger("collab.replication")

EMPTY_UPDATE = b"\x00\x00"


class _Link:
    """One loaded room wired to its channel."""

    __slots__ = ("channel", "listeners", "pending", "room", "task")

    def __init__(self, room: Room, channel: str) -> None:
        self.room = room
        self.channel = channel
        self.task: asyncio.Task[None] | None = None
        # Local updates of this event-loop turn, published as one merged update.
        self.pending: list[tuple[bytes, str]] = []
        self.listeners: tuple[UpdateListener, AwarenessListener, StatelessListener] | None = None


class Replicator:
    def __init__(self, server: CollabServer, backplane: Backplane, *,
                 prefix: str | None = None, instance_id: str | None = None) -> None:
        self.server = server
        self.backplane = backplane
        self.prefix = prefix if prefix is not None else server.settings.redis_prefix
        self.instance_id = instance_id or server.settings.instance_id
        self.links: dict[str, _Link] = {}
        self._started = False

    def channel(self, room: str) -> str:
        return f"{self.prefix}:room:{room}"

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Wire the server's room hooks (and any room loaded already)."""
        if self._started:
            return
        self._started = True
        self.server.on_room_loaded.append(self._attach)
        self.server.on_room_unloading.append(self._detach)
        self.backplane.add_resubscribed_callback(self.resync_all)
        for name in list(self.server.rooms):
            room = self.server.room(name)
            if room is not None:
                await self._attach(room)

    async def stop(self) -> None:
        if not self._started:
            return
        self._started = False
        _remove(self.server.on_room_loaded, self._attach)
        _remove(self.server.on_room_unloading, self._detach)
        for link in list(self.links.values()):
            await self._detach(link.room)

    # -- rooms ---------------------------------------------------------------------

    async def _attach(self, room: Room) -> None:
        if room.name in self.links:
            return
        link = self.links[room.name] = _Link(room, self.channel(room.name))
        on_update = self._outbound_update(link)
        on_awareness = self._outbound_awareness(link)
        on_stateless = self._outbound_stateless(link)
        room.update_listeners.append(on_update)
        room.awareness_listeners.append(on_awareness)
        room.stateless_listeners.append(on_stateless)
        link.listeners = (on_update, on_awareness, on_stateless)
        # Subscribing waits for Redis; a room load never does (local editing
        # must not depend on the backplane). Anti-entropy covers the gap.
        link.task = asyncio.get_running_loop().create_task(self._subscribe(link))

    async def _subscribe(self, link: _Link) -> None:
        await self.backplane.subscribe(link.channel, lambda data: self._inbound(link, data))
        self._request_sync(link)

    async def _detach(self, room: Room) -> None:
        link = self.links.pop(room.name, None)
        if link is None or link.room is not room:
            return
        if link.task is not None and not link.task.done():
            link.task.cancel()
            try:
                await link.task
            except asyncio.CancelledError:
                pass
        self._flush(link)  # the last local edits still go out
        if link.listeners is not None:
            on_update, on_awareness, on_stateless = link.listeners
            _remove(room.update_listeners, on_update)
            _remove(room.awareness_listeners, on_awareness)
            _remove(room.stateless_listeners, on_stateless)
        await self.backplane.unsubscribe(link.channel)

    async def resync_all(self) -> None:
        """After a (re)subscribe: anti-entropy for every loaded room."""
        for link in list(self.links.values()):
            self._request_sync(link)

    def _request_sync(self, link: _Link) -> None:
        room = link.room
        self._publish(link, rp.SyncRequest(self.instance_id, room.state_vector()))
        self._publish_local_awareness(link)

    def _publish_local_awareness(self, link: _Link) -> None:
        local = link.room.local_awareness()
        if local != b"\x00":  # zero entries
            self._publish(link, rp.Awareness(self.instance_id, local))

    # -- outbound ------------------------------------------------------------------

    def _publish(self, link: _Link, msg: rp.Message) -> None:
        self.backplane.publish(link.channel, rp.encode(msg))

    def _outbound_update(self, link: _Link) -> UpdateListener:
        def on_update(update: bytes, origin: Origin) -> None:
            if isinstance(origin, (RemoteOrigin, StoreOrigin)):
                return
            if not link.pending:
                asyncio.get_running_loop().call_soon(self._flush, link)
            link.pending.append((update, _conn(origin)))
        return on_update

    def _flush(self, link: _Link) -> None:
        """Publish the updates of one loop turn as one message (a burst of
        keystrokes costs one Redis round trip, not one per keystroke)."""
        pending, link.pending = link.pending, []
        if not pending:
            return
        if len(pending) == 1:
            update, conn = pending[0]
        else:
            update = merge_updates(*(u for u, _ in pending))
            conns = {c for _, c in pending}
            conn = conns.pop() if len(conns) == 1 else ""
        self._publish(link, rp.Update(self.instance_id, update, conn))

    def _outbound_awareness(self, link: _Link) -> AwarenessListener:
        def on_awareness(update: bytes, origin: Origin) -> None:
            if not isinstance(origin, (RemoteOrigin, StoreOrigin)):
                self._flush(link)  # a cursor must not overtake the text it points into
                self._publish(link, rp.Awareness(self.instance_id, update, _conn(origin)))
        return on_awareness

    def _outbound_stateless(self, link: _Link) -> StatelessListener:
        def on_stateless(payload: str, origin: Origin) -> None:
            if not isinstance(origin, (RemoteOrigin, StoreOrigin)):
                self._flush(link)
                self._publish(link, rp.Stateless(self.instance_id, payload, _conn(origin)))
        return on_stateless

    # -- inbound -------------------------------------------------------------------

    def _inbound(self, link: _Link, data: bytes) -> None:
        if self.links.get(link.room.name) is not link:
            return  # detached while the message was in flight
        try:
            msg = rp.decode(data)
        except BackplaneError as exc:
            self._invalid(link, "-", "-", str(exc))
            return
        if msg.sender == self.instance_id:
            return  # our own echo: pub/sub delivers to the publisher too
        room = link.room
        origin = RemoteOrigin(msg.sender)
        try:
            if isinstance(msg, rp.Update):
                room.apply(msg.update, origin)
            elif isinstance(msg, rp.Awareness):
                room.apply_awareness(aw.decode_update(msg.update), origin)
            elif isinstance(msg, rp.Stateless):
                room.broadcast_stateless(msg.payload, origin)
            elif isinstance(msg, rp.SyncRequest):
                self._publish(link, rp.SyncReply(self.instance_id, msg.sender,
                                                 room.diff(msg.state_vector),
                                                 room.state_vector()))
                self._publish_local_awareness(link)
            elif msg.target == self.instance_id:
                room.apply(msg.update, origin)
                back = room.diff(msg.state_vector)
                if back != EMPTY_UPDATE:
                    self._publish(link, rp.Update(self.instance_id, back))
        except CloseError as exc:
            self._invalid(link, msg.sender, msg.connection, exc.reason)

    def _invalid(self, link: _Link, sender: str, connection: str, reason: str) -> None:
        self.server.metrics.backplane_events.labels("invalid").inc()
        log.warning("rejected a backplane message: %s", reason,
                    extra={"room": link.room.name, "instance": sender,
                           "conn_id": connection or "-"})


def _conn(origin: Origin) -> str:
    return origin.peer_id if isinstance(origin, PeerOrigin) else ""


def _remove(items: list[Any], item: object) -> None:
    try:
        items.remove(item)
    except ValueError:
        log.debug("listener %r was already removed", item)
