"""Drives one y-websocket socket: handshake, join, then frames in order."""

from __future__ import annotations

import logging

from ..errors import CloseError
from ..rooms.names import validate_room_name
from ..rooms.room import Room
from ..transport.session import Session
from ..wire import ywebsocket as p
from ..wire.labels import Label
from .codec import YPeer, auth_denied_frame

log = logging.getLogger("collab.ywebsocket")


class YWebsocketSession(Session):
    """Drives one y-websocket socket: handshake, join, then frames in order."""

    room_obj: Room | None = None
    peer: YPeer | None = None

    async def run(self) -> None:
        name = self.scope["path_params"].get("room", "")
        conn = self.conn
        self.rooms.append(name)  # named in every line about this socket, joined or not
        try:
            self.server.check_open()
            validate_room_name(name, self.settings.max_room_name, self.settings.reserved_paths)
        except CloseError as exc:
            await self.accept()
            await self.reject(exc.code, exc.reason)
            return
        await self.accept()
        result = await self.authenticate(name)
        if not result.allowed:
            conn.send(auth_denied_frame(result.reason), Label.AUTH)
            await self.reject(result.code, result.reason, flush=True)
            return
        self.peer = YPeer(conn, result.readonly)
        self.room_obj = await self.join_room(name, self.peer, result)
        if self.room_obj is not None:
            await self.receive_loop()

    def handle_frame(self, frame: bytes) -> None:
        room, peer = self.room_obj, self.peer
        assert room is not None and peer is not None
        msg = p.decode_message(frame)
        self.conn.stats.last_frame_type = type(msg).__name__
        self.count_frame_in(type(msg).__name__, len(frame))
        if isinstance(msg, p.SyncStep1):
            room.sync_step1(peer, msg.state_vector)
        elif isinstance(msg, (p.SyncStep2, p.SyncUpdate)):
            room.sync_update(peer, msg.update)
        elif isinstance(msg, p.Awareness):
            room.peer_awareness(peer, msg.update)
        elif isinstance(msg, p.QueryAwareness):
            room.query_awareness(peer)
        # Auth frames from clients are tolerated and ignored.

    def on_leave(self) -> None:
        if self.room_obj is not None and self.peer is not None:
            self.server.rooms.leave(self.room_obj.name, self.peer)
