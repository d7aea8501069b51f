"""Hocuspocus frames for a room: one codec class for both address forms."""

from __future__ import annotations

from ..wire import hocuspocus as hp


class HocuspocusCodec:
    """Frames addressed to the room name, or to a fixed ``address``: a
    session-aware provider (``name\\0sessionId``) routes by the whole address,
    so its peers get frames of their own."""

    __slots__ = ("address",)

    def __init__(self, address: str | None = None) -> None:
        self.address = address

    def step1(self, room: str, state_vector: bytes) -> bytes:
        return hp.encode_step1(self.address or room, state_vector)

    def step2(self, room: str, update: bytes) -> bytes:
        return hp.encode_step2(self.address or room, update)

    def update(self, room: str, update: bytes) -> bytes:
        return hp.encode_update(self.address or room, update)

    def awareness(self, room: str, update: bytes) -> bytes:
        return hp.encode_awareness(self.address or room, update)

    def stateless(self, room: str, payload: str) -> bytes | None:
        return hp.encode_stateless(self.address or room, payload)


# One codec object for every plain-address peer, so a room encodes each
# broadcast once for all of them.
CODEC = HocuspocusCodec()
