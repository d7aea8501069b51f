"""The y-websocket endpoint: one document per socket, the room is the path."""

from __future__ import annotations

import logging
import re

from . import protocol as p
from .connection import Connection
from .errors import CloseError, PolicyViolation
from .room import Codec, Room
from .session import Session

log = logging.getLogger("collab.ywebsocket")


class YWebsocketCodec:
    """y-websocket frames carry no document name: ``room`` is ignored."""

    def step1(self, room: str, state_vector: bytes) -> bytes:
        return p.encode_step1(state_vector)

    def step2(self, room: str, update: bytes) -> bytes:
        return p.encode_step2(update)

    def update(self, room: str, update: bytes) -> bytes:
        return p.encode_update(update)

    def awareness(self, room: str, update: bytes) -> bytes:
        return p.encode_awareness(update)

    def stateless(self, room: str, payload: str) -> bytes | None:
        return None  # y-websocket has no stateless messages


CODEC = YWebsocketCodec()

# Path segments of letters, digits and a few URL-safe marks, joined by '/'.
_ROOM_RE = re.compile(r"[\w.~:@+=,!$'()*-]+(?:/[\w.~:@+=,!$'()*-]+)*")


def validate_room_name(name: str, max_len: int, reserved: frozenset[str]) -> None:
    if not name:
        raise PolicyViolation("room name is empty")
    if len(name) > max_len:
        raise PolicyViolation(f"room name longer than {max_len} characters")
    if not _ROOM_RE.fullmatch(name) or any(s in (".", "..") for s in name.split("/")):
        raise PolicyViolation("room name has characters or segments that are not allowed")
    if name in reserved:
        raise PolicyViolation(f"{name!r} is a reserved path, not a room")


class YPeer:
    """A y-websocket socket as a room peer."""

    __slots__ = ("codec", "id", "readonly", "send")

    def __init__(self, conn: Connection, readonly: bool, codec: Codec = CODEC) -> None:
        self.id = conn.id
        self.readonly = readonly
        self.codec = codec
        self.send = conn.send


def auth_denied_frame(reason: str) -> bytes:
    return bytes((p.MessageType.AUTH, 0)) + p.write_var_string(reason)


class YWebsocketSession(Session):
    """Drives one y-websocket socket: handshake, join, then frames in order."""

    room_obj: Room | None = None
    peer: YPeer | None = None

    async def run(self) -> None:
        name = self.scope["path_params"].get("room", "")
        conn = self.conn
        self.room_name = name
        try:
            self.check_open()
            validate_room_name(name, self.settings.max_room_name, self.settings.reserved_paths)
        except CloseError as exc:
            await self.accept()
            await self.reject(exc.code, exc.reason)
            return
        await self.accept()
        result = await self.authenticate(name)
        if not result.allowed:
            conn.send(auth_denied_frame(result.reason))
            await self.reject(result.code, result.reason, flush=True)
            return
        self.peer = YPeer(conn, result.readonly)
        if not await self.join_room(name, self.peer, result):
            return
        await self.receive_loop()

    def frame_kind_out(self, frame: bytes) -> str:
        return p.frame_kind(frame)

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
            self.server.leave(self.room_name, self.peer)
