"""A document of a Hocuspocus socket as a room peer, and its frame codecs."""

from __future__ import annotations

import asyncio
import enum
from collections import deque

from ..connection import Connection
from ..room import Codec, Room
from . import protocol as hp


class HocuspocusCodec:
    """Frames for a plain document address: ``room`` is the address."""

    def step1(self, room: str, state_vector: bytes) -> bytes:
        return hp.encode_step1(room, state_vector)

    def step2(self, room: str, update: bytes) -> bytes:
        return hp.encode_step2(room, update)

    def update(self, room: str, update: bytes) -> bytes:
        return hp.encode_update(room, update)

    def awareness(self, room: str, update: bytes) -> bytes:
        return hp.encode_awareness(room, update)

    def stateless(self, room: str, payload: str) -> bytes | None:
        return hp.encode_stateless(room, payload)


# One codec object for every plain-address peer, so a room encodes each
# broadcast once for all of them.
CODEC = HocuspocusCodec()


class SessionCodec:
    """Frames for a session-aware address (``name\\0sessionId``): the provider
    routes by the whole address, so these peers get frames of their own."""

    __slots__ = ("address",)

    def __init__(self, address: str) -> None:
        self.address = address

    def step1(self, room: str, state_vector: bytes) -> bytes:
        return hp.encode_step1(self.address, state_vector)

    def step2(self, room: str, update: bytes) -> bytes:
        return hp.encode_step2(self.address, update)

    def update(self, room: str, update: bytes) -> bytes:
        return hp.encode_update(self.address, update)

    def awareness(self, room: str, update: bytes) -> bytes:
        return hp.encode_awareness(self.address, update)

    def stateless(self, room: str, payload: str) -> bytes | None:
        return hp.encode_stateless(self.address, payload)


class DocState(enum.Enum):
    WAITING = "waiting"  # frames arrived, no token yet
    OPENING = "opening"  # authenticating, then joining the room
    OPEN = "open"
    DENIED = "denied"


class Document:
    """One document of a Hocuspocus socket; the room peer once OPEN.

    ``id`` is the connection id (plus ``/sessionId`` for a session-aware
    provider, so two providers of one document on one socket stay apart).
    """

    __slots__ = ("address", "codec", "conn", "id", "join_step1", "name", "queue",
                 "queued_bytes", "readonly", "room", "state", "task")

    def __init__(self, conn: Connection, address: str, name: str, session: str | None) -> None:
        self.conn = conn
        self.address = address
        self.name = name
        self.id = conn.id if session is None else f"{conn.id}/{session}"
        self.codec: Codec = CODEC if session is None else SessionCodec(address)
        self.readonly = False
        self.state = DocState.WAITING
        self.queue: deque[tuple[hp.Message, int]] = deque()
        self.queued_bytes = 0
        self.room: Room | None = None
        self.task: asyncio.Task[None] | None = None
        # Room.join sends our step1; the provider's first step1 then needs no
        # second one (see _dispatch).
        self.join_step1 = False

    def __repr__(self) -> str:
        return f"<Document {self.address!r} {self.state.value}>"

    def send(self, frame: bytes) -> None:
        self.conn.send(frame)
