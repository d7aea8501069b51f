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

from .errors import ProtocolError

# A varUint longer than this cannot be a length or an id we accept (2**63).
_MAX_VARUINT_BYTES = 9


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3


class SyncType(IntEnum):
    STEP1 = 0
    STEP2 = 1
    UPDATE = 2


def write_var_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varUint must be non-negative")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def write_var_string(text: str) -> bytes:
    return write_var_bytes(text.encode("utf-8"))


def read_var_uint(buf: bytes, pos: int) -> tuple[int, int]:
    """Return ``(value, next_pos)``; raise ProtocolError when truncated."""
    value = 0
    shift = 0
    for _i in range(_MAX_VARUINT_BYTES):
        if pos >= len(buf):
            raise ProtocolError("truncated varUint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ProtocolError("varUint too long")


def read_var_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ProtocolError("length runs past the end of the frame")
    return buf[pos:end], end


def read_var_string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_var_bytes(buf, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("string is not UTF-8") from exc


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


_KIND_NAMES: dict[int, str] = {MessageType.AWARENESS: "Awareness", MessageType.AUTH: "Auth",
                               MessageType.QUERY_AWARENESS: "QueryAwareness"}
_SYNC_KIND_NAMES: dict[int, str] = {SyncType.STEP1: "SyncStep1", SyncType.STEP2: "SyncStep2",
                                    SyncType.UPDATE: "SyncUpdate"}


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
