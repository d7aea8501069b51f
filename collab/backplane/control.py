"""Reach one connection, or every socket of a room, whichever instance holds them.

A connection id names a socket on one instance, and no instance knows which
(API Gateway's ``@connections`` model: the id is all the caller has). So a
request that is not for a socket here goes out on one broadcast channel,
``<namespace>:control``; the instance holding the socket carries it out and
answers with an ACK addressed to the requester; the others ignore it. No ACK
within ``ack_timeout`` means no instance holds that socket (the HTTP API
answers 404).

Room-wide closes (``ROOM_CLOSE``) are not acknowledged: no instance knows how
many others there are. With ``delete`` each instance also forgets the room
(drops its unwritten updates and unloads it without storing), so that no
instance writes the deleted document back.

Without a backplane (one instance) only local sockets are reached.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import BackplaneError
from ..rooms.registry import RoomRegistry
from ..tasks import TaskSet
from ..wire import backplane as rp
from ..wire.labels import Label
from .base import Backplane

log = logging.getLogger("collab.control")


class Closable(Protocol):
    def close(self, code: int, reason: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Reached:
    """What became of a request for one connection."""

    instance: str
    status: rp.AckStatus
    count: int  # documents that got the message, or sockets closed


class Control:
    """Carries out connection and room requests, here or through ``backplane``.

    ``connections`` is the server's open sockets by id; ``forget(room)``
    drops a deleted room's unwritten updates and unloads it; ``room_channel``
    names a room's channel (the replicator's), for stateless messages to rooms
    not loaded here.
    """

    def __init__(
        self,
        backplane: Backplane | None,
        *,
        channel: str,
        instance_id: str,
        rooms: RoomRegistry,
        connections: Mapping[str, Closable],
        forget: Callable[[str], Coroutine[Any, Any, None]],
        room_channel: Callable[[str], str],
        ack_timeout: float = 2.0,
        on_invalid: Callable[[], None] | None = None,
    ) -> None:
        self.backplane = backplane
        self.channel = channel
        self.instance_id = instance_id
        self._rooms = rooms
        self._connections = connections
        self._forget = forget
        self._room_channel = room_channel
        self.ack_timeout = ack_timeout
        self._on_invalid = on_invalid
        self._waiting: dict[str, asyncio.Future[Reached]] = {}
        self._tasks = TaskSet("control")

    async def start(self) -> None:
        if self.backplane is not None:
            await self.backplane.subscribe(self.channel, self._inbound)

    async def stop(self) -> None:
        if self.backplane is not None:
            await self.backplane.unsubscribe(self.channel)
        for future in self._waiting.values():
            future.cancel()
        await self._tasks.aclose()

    # -- requests (the HTTP API) -------------------------------------------------

    async def send(self, conn_id: str, payload: str, room: str = "") -> Reached | None:
        """A stateless message to one connection's documents (all, or ``room``)."""
        local = self._send_here(conn_id, payload, room)
        if local is not None:
            return Reached(self.instance_id, *local)
        return await self._ask(
            lambda rid: rp.ConnSend(self.instance_id, rid, room, payload, conn_id)
        )

    async def close(self, conn_id: str, code: int, reason: str) -> Reached | None:
        conn = self._connections.get(conn_id)
        if conn is not None:
            conn.close(code, reason)
            return Reached(self.instance_id, rp.AckStatus.DONE, 1)
        return await self._ask(
            lambda rid: rp.ConnClose(self.instance_id, rid, code, reason, conn_id)
        )

    async def close_room(self, room: str, code: int, reason: str, *, delete: bool = False) -> int:
        """Close the room's sockets here and on every instance; the count is
        this instance's. With ``delete`` every instance forgets the room."""
        self._publish(rp.RoomClose(self.instance_id, room, code, reason, delete))
        closed = self._close_room_here(room, code, reason)
        if delete:
            await self._forget(room)
        return closed

    def publish_stateless(self, room: str, payload: str) -> None:
        """A stateless message for a room not loaded here: its channel reaches
        the instances that have it loaded (those with sockets in it)."""
        if self.backplane is not None:
            self.backplane.publish(
                self._room_channel(room),
                rp.encode(rp.Stateless(self.instance_id, payload, "server")),
            )

    async def _ask(self, make: Callable[[str], rp.Message]) -> Reached | None:
        if self.backplane is None:
            return None
        request = uuid.uuid4().hex[:16]
        future: asyncio.Future[Reached] = asyncio.get_running_loop().create_future()
        self._waiting[request] = future
        try:
            self._publish(make(request))
            return await asyncio.wait_for(future, self.ack_timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(request, None)

    def _publish(self, msg: rp.Message) -> None:
        if self.backplane is not None:
            self.backplane.publish(self.channel, rp.encode(msg))

    # -- carried out here ---------------------------------------------------------

    def _send_here(
        self, conn_id: str, payload: str, only_room: str
    ) -> tuple[rp.AckStatus, int] | None:
        if conn_id not in self._connections:
            return None
        sent = unsupported = 0
        for name in self._rooms:
            room = self._rooms.get(name)
            if room is None or (only_room and name != only_room):
                continue
            for peer in list(room.peers.values()):
                if peer.connection_id != conn_id:
                    continue
                frame = peer.codec.stateless(name, payload)
                if frame is None:
                    unsupported += 1  # y-websocket: the protocol has no such message
                else:
                    peer.send(frame, Label.STATELESS)
                    sent += 1
        if unsupported and not sent:
            return rp.AckStatus.NO_STATELESS, 0
        return rp.AckStatus.DONE, sent

    def _close_room_here(self, name: str, code: int, reason: str) -> int:
        room = self._rooms.get(name)
        if room is None:
            return 0
        ids = {peer.connection_id for peer in room.peers.values()}
        closed = 0
        for conn_id in ids:
            conn = self._connections.get(conn_id)
            if conn is not None:
                conn.close(code, reason)
                closed += 1
        return closed

    # -- inbound ------------------------------------------------------------------

    def _inbound(self, data: bytes) -> None:
        try:
            msg = rp.decode(data)
        except BackplaneError as exc:
            self._invalid(str(exc))
            return
        if msg.sender == self.instance_id:
            return  # our own echo: already carried out here
        if isinstance(msg, rp.Ack):
            future = self._waiting.get(msg.request) if msg.target == self.instance_id else None
            if future is not None and not future.done():
                future.set_result(Reached(msg.sender, msg.status, msg.count))
        elif isinstance(msg, rp.ConnSend):
            local = self._send_here(msg.connection, msg.payload, msg.room)
            if local is not None:
                self._ack(msg.sender, msg.request, msg.connection, *local)
        elif isinstance(msg, rp.ConnClose):
            conn = self._connections.get(msg.connection)
            if conn is not None:
                log.info(
                    "closing on request of instance %s: %d %s",
                    msg.sender,
                    msg.code,
                    msg.reason,
                    extra={"conn_id": msg.connection},
                )
                conn.close(msg.code, msg.reason)
                self._ack(msg.sender, msg.request, msg.connection, rp.AckStatus.DONE, 1)
        elif isinstance(msg, rp.RoomClose):
            self._close_room_here(msg.room, msg.code, msg.reason)
            if msg.delete:
                self._tasks.spawn(self._forget(msg.room), name=f"forget {msg.room}")
        else:
            self._invalid(f"{type(msg).__name__} on the control channel")

    def _ack(
        self, target: str, request: str, conn_id: str, status: rp.AckStatus, count: int
    ) -> None:
        self._publish(rp.Ack(self.instance_id, target, request, status, count, conn_id))

    def _invalid(self, reason: str) -> None:
        if self._on_invalid is not None:
            self._on_invalid()
        log.warning("rejected a control message: %s", reason)
