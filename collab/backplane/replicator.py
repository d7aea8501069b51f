"""Rooms shared between instances through a :class:`~collab.backplane.Backplane`.

The replicator knows rooms and the message format, not Redis. While a room is
loaded it is subscribed to ``<prefix>:<db>:room:<name>`` (``prefix`` is
the Redis settings' namespace: the database index keeps two deployments on
one Redis apart):

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
from collections.abc import Callable

from pycrdt import merge_updates

from ..errors import BackplaneError, CloseError
from ..rooms.room import Origin, PeerOrigin, RemoteOrigin, Room, StoreOrigin
from ..tasks import TaskSet
from ..wire import awareness as aw
from ..wire import backplane as rp
from .base import Backplane

log = logging.getLogger("collab.replication")

EMPTY_UPDATE = b"\x00\x00"


class _Link:
    """One loaded room wired to its channel."""

    __slots__ = ("channel", "pending", "room", "subscribing")

    def __init__(self, room: Room, channel: str) -> None:
        self.room = room
        self.channel = channel
        self.subscribing: asyncio.Task[None] | None = None
        # Local updates of this event-loop turn, published as one merged update.
        self.pending: list[tuple[bytes, str]] = []


class Replicator:
    """Shares loaded rooms through ``backplane``. It is a room lifecycle
    observer (a room is linked while loaded) and a room observer (local
    changes of a linked room are published); ``on_invalid()`` counts a
    backplane message it rejected."""

    def __init__(
        self,
        backplane: Backplane,
        *,
        prefix: str,
        instance_id: str,
        on_invalid: Callable[[], None] | None = None,
        hash_tag: bool = False,
    ) -> None:
        self.backplane = backplane
        self.prefix = prefix
        self.hash_tag = hash_tag
        self.instance_id = instance_id
        self._on_invalid = on_invalid
        self.links: dict[str, _Link] = {}
        self._tasks = TaskSet("replicator")
        backplane.add_resubscribed_callback(self.resync_all)

    def channel(self, room: str) -> str:
        """The one place room channels are named. On a Redis Cluster
        (``hash_tag``) the whole name is the hash tag, ``{collab:room:NAME}``:
        it is never empty whatever NAME holds, and any key of the room named
        ``{collab:room:NAME}:...`` shares the channel's slot."""
        name = f"{self.prefix}:room:{room}"
        return f"{{{name}}}" if self.hash_tag else name

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the backplane. Never raises for an unreachable or
        misconfigured Redis: that is logged with the cause, readiness fails,
        and it is retried."""
        await self.backplane.start()

    async def stop(self) -> None:
        """Unlink every room (the last local edits still go out), then stop
        the backplane."""
        for link in list(self.links.values()):
            await self.room_unloading(link.room)
        await self._tasks.aclose()
        await self.backplane.stop()

    # -- rooms (lifecycle observer) -------------------------------------------------

    async def room_loaded(self, room: Room) -> None:
        if room.name in self.links:
            return
        link = self.links[room.name] = _Link(room, self.channel(room.name))
        # Subscribing waits for Redis; a room load never does (local editing
        # must not depend on the backplane). Anti-entropy covers the gap.
        link.subscribing = self._tasks.spawn(self._subscribe(link), name=f"subscribe {room.name}")

    async def _subscribe(self, link: _Link) -> None:
        await self.backplane.subscribe(link.channel, lambda data: self._inbound(link, data))
        self._request_sync(link)

    async def room_unloading(self, room: Room) -> None:
        link = self.links.pop(room.name, None)
        if link is None or link.room is not room:
            return
        task = link.subscribing
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])  # never raises the task's CancelledError
        self._flush(link)  # the last local edits still go out
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

    def _linked(self, room: Room, origin: Origin) -> _Link | None:
        """The room's link, if its change is one to publish: made here, by a
        local peer or the application (not one that came from the backplane
        or the store: every instance has those already)."""
        if isinstance(origin, (RemoteOrigin, StoreOrigin)):
            return None
        link = self.links.get(room.name)
        return link if link is not None and link.room is room else None

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None:
        link = self._linked(room, origin)
        if link is not None:
            if not link.pending:
                asyncio.get_running_loop().call_soon(self._flush, link)
            link.pending.append((update, _conn(origin)))

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

    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        link = self._linked(room, origin)
        if link is not None:
            self._flush(link)  # a cursor must not overtake the text it points into
            self._publish(link, rp.Awareness(self.instance_id, update, _conn(origin)))

    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None:
        link = self._linked(room, origin)
        if link is not None:
            self._flush(link)
            self._publish(link, rp.Stateless(self.instance_id, payload, _conn(origin)))

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
                self._publish(
                    link,
                    rp.SyncReply(
                        self.instance_id,
                        msg.sender,
                        room.diff(msg.state_vector),
                        room.state_vector(),
                    ),
                )
                self._publish_local_awareness(link)
            elif isinstance(msg, rp.SyncReply):
                if msg.target == self.instance_id:
                    room.apply(msg.update, origin)
                    back = room.diff(msg.state_vector)
                    if back != EMPTY_UPDATE:
                        self._publish(link, rp.Update(self.instance_id, back))
            else:  # a control message (backplane/control.py) has no business here
                self._invalid(
                    link, msg.sender, msg.connection, f"{type(msg).__name__} on a room channel"
                )
        except CloseError as exc:
            self._invalid(link, msg.sender, msg.connection, exc.reason)

    def _invalid(self, link: _Link, sender: str, connection: str, reason: str) -> None:
        if self._on_invalid is not None:
            self._on_invalid()
        log.warning(
            "rejected a backplane message: %s",
            reason,
            extra={"room": link.room.name, "instance": sender, "conn_id": connection or "-"},
        )


def _conn(origin: Origin) -> str:
    return origin.peer_id if isinstance(origin, PeerOrigin) else ""
