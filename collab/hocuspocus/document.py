"""One document of a Hocuspocus socket: its state, its queue, and (once open)
the room peer."""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable

from ..rooms.room import Codec, Room
from ..wire import hocuspocus as hp
from .codec import CODEC, HocuspocusCodec


class DocState(enum.Enum):
    WAITING = "waiting"  # frames arrived, no token yet
    OPENING = "opening"  # authenticating, then joining the room
    OPEN = "open"
    DENIED = "denied"
    CLOSED = "closed"  # gone from the socket (closed by the provider, or the socket ended)


class Document:
    """``id`` is the connection id (plus ``/sessionId`` for a session-aware
    provider, so two providers of one document on one socket stay apart)."""

    __slots__ = (
        "address",
        "codec",
        "connection_id",
        "id",
        "join_step1",
        "name",
        "queue",
        "queued_bytes",
        "readonly",
        "room",
        "send",
        "state",
    )

    def __init__(
        self,
        connection_id: str,
        address: str,
        name: str,
        session: str | None,
        send: Callable[[bytes, str], None],
    ) -> None:
        self.connection_id = connection_id
        self.address = address
        self.name = name
        self.id = connection_id if session is None else f"{connection_id}/{session}"
        # The socket's send: frames the room addresses to this peer.
        self.send = send
        self.codec: Codec = CODEC if session is None else HocuspocusCodec(address)
        self.readonly = False
        self.state = DocState.WAITING
        self.queue: deque[tuple[hp.Message, int]] = deque()
        self.queued_bytes = 0
        self.room: Room | None = None
        # Room.join sends our step1; the provider's first step1 then needs no
        # second one (see HocuspocusSession.dispatch).
        self.join_step1 = False

    def __repr__(self) -> str:
        return f"<Document {self.address!r} {self.state.value}>"

    def to(self, state: DocState, *expected: DocState) -> None:
        if self.state not in expected:
            raise RuntimeError(
                f"document {self.address!r}: {self.state.value} -> "
                f"{state.value}, expected {'/'.join(e.value for e in expected)}"
            )
        self.state = state
