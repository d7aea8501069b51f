"""The y-websocket wire protocol as pure functions over bytes (no I/O).

Every frame is lib0-encoded: ``varUint`` is unsigned LEB128, ``varUint8Array``
is a varUint length followed by that many bytes. A frame starts with a varUint
message type (:class:`MessageType`); sync frames carry a sub-type
(:class:`SyncType`) and one varUint8Array. Decoding errors raise
:class:`~collab.errors.ProtocolError` (1002) so the caller can close the one
socket that sent them with a precise code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import ProtocolError
from .lib0 import read_var_bytes, read_var_uint, write_var_bytes


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


@dataclass(frozen=True, slots=True)
class SyncStep1:
    state_vector: bytes


@dataclass(frozen=True, slots=True)
class SyncStep2:
    update: bytes


@dataclass(frozen=True, slots=True)
class SyncUpdate:
    update: bytes


@dataclass(frozen=True, slots=True)
class Awareness:
    update: bytes


@dataclass(frozen=True, slots=True)
class Auth:
    payload: bytes


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    pass


SyncMessage = SyncStep1 | SyncStep2 | SyncUpdate
Message = SyncStep1 | SyncStep2 | SyncUpdate | Awareness | Auth | QueryAwareness


def decode_sync(buf: bytes, pos: int = 0) -> tuple[SyncMessage, int]:
    """Decode a y-protocols sync message (sub-type + payload) starting at ``pos``."""
    sub, pos = read_var_uint(buf, pos)
    payload, pos = read_var_bytes(buf, pos)
    if sub == SyncType.STEP1:
        return SyncStep1(payload), pos
    if sub == SyncType.STEP2:
        return SyncStep2(payload), pos
    if sub == SyncType.UPDATE:
        return SyncUpdate(payload), pos
    raise ProtocolError(f"unknown sync message type {sub}")


def decode_message(frame: bytes) -> Message:
    """Decode one y-websocket frame."""
    if not frame:
        raise ProtocolError("empty frame")
    kind, pos = read_var_uint(frame, 0)
    if kind == MessageType.SYNC:
        msg: Message
        msg, pos = decode_sync(frame, pos)
        return msg
    if kind == MessageType.AWARENESS:
        update, pos = read_var_bytes(frame, pos)
        return Awareness(update)
    if kind == MessageType.AUTH:
        return Auth(frame[pos:])
    if kind == MessageType.QUERY_AWARENESS:
        return QueryAwareness()
    raise ProtocolError(f"unknown message type {kind}")


_KIND_NAMES: dict[int, str] = {
    MessageType.AWARENESS: "Awareness",
    MessageType.AUTH: "Auth",
    MessageType.QUERY_AWARENESS: "QueryAwareness",
}
_SYNC_KIND_NAMES: dict[int, str] = {
    SyncType.STEP1: "SyncStep1",
    SyncType.STEP2: "SyncStep2",
    SyncType.UPDATE: "SyncUpdate",
}


def frame_kind(frame: bytes) -> str:
    """The message class name of a frame, from its first bytes, without decoding
    it: cheap enough to label every outbound frame in the metrics."""
    if not frame:
        return "empty"
    if frame[0] == MessageType.SYNC:
        return _SYNC_KIND_NAMES.get(frame[1], "unknown") if len(frame) > 1 else "unknown"
    return _KIND_NAMES.get(frame[0], "unknown")


def encode_sync(sub: SyncType, payload: bytes) -> bytes:
    """A sync message body without the outer message type (shared with Hocuspocus)."""
    return bytes((sub,)) + write_var_bytes(payload)


def encode_step1(state_vector: bytes) -> bytes:
    return bytes((MessageType.SYNC,)) + encode_sync(SyncType.STEP1, state_vector)


def encode_step2(update: bytes) -> bytes:
    return bytes((MessageType.SYNC,)) + encode_sync(SyncType.STEP2, update)


def encode_update(update: bytes) -> bytes:
    return bytes((MessageType.SYNC,)) + encode_sync(SyncType.UPDATE, update)


def encode_awareness(update: bytes) -> bytes:
    return bytes((MessageType.AWARENESS,)) + write_var_bytes(update)


def encode_query_awareness() -> bytes:
    return bytes((MessageType.QUERY_AWARENESS,))
