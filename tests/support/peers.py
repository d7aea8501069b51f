"""A room peer that records what the room sends it (no socket)."""

from __future__ import annotations

from collab.rooms.room import Codec
from collab.ywebsocket.codec import CODEC


class RecordingPeer:
    def __init__(self, pid: str, readonly: bool = False, codec: Codec = CODEC) -> None:
        self.id = self.connection_id = pid
        self.readonly = readonly
        self.codec = codec
        self.frames: list[bytes] = []
        self.labels: list[str] = []

    def send(self, frame: bytes, label: str) -> None:
        self.frames.append(frame)
        self.labels.append(label)
