"""y-websocket frames for a room, and a y-websocket socket as a room peer."""

from __future__ import annotations

from ..rooms.room import Codec
from ..transport.connection import Connection
from ..wire import lib0
from ..wire import ywebsocket as p


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


class YPeer:
    """A y-websocket socket as a room peer."""

    __slots__ = ("codec", "connection_id", "id", "readonly", "send")

    def __init__(self, conn: Connection, readonly: bool, codec: Codec = CODEC) -> None:
        self.id = self.connection_id = conn.id
        self.readonly = readonly
        self.codec = codec
        self.send = conn.send


def auth_denied_frame(reason: str) -> bytes:
    return bytes((p.MessageType.AUTH, 0)) + lib0.write_var_string(reason)
