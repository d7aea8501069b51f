"""The Hocuspocus wire protocol as pure functions over bytes (no I/O).

Every frame but two is ``varString(address) · varUint(type) · payload``
(lib0 encoding, as in :mod:`collab.protocol`). The address is the document
name, or ``name + "\\0" + sessionId`` from a provider created with
``sessionAwareness: true``; replies must carry the address exactly as it
arrived, because the provider routes incoming frames by it. The two
exceptions are the keepalive frames Ping (``0x09``) and Pong (``0x0a``): one
bare byte, no address. A provider tells them apart from an addressed frame by
their length of one (an address of length 9 or 10 cannot fit in one byte).

Types (:class:`MessageType`) as @hocuspocus/server 3.x/4.x and
@hocuspocus/provider 4.x encode them:

====  ==================  ==================================================
  0   Sync                y-protocols sync message (step1 / step2 / update)
  1   Awareness           varUint8Array awareness update
  2   Auth                varUint sub-type (:class:`AuthType`), then
                          Token: varString token (+ varString provider
                          version, from 4.x providers); PermissionDenied:
                          varString reason; Authenticated: varString scope
  3   QueryAwareness      (empty)
  4   SyncReply           a sync message that must not be answered with
                          our own step1 (a provider 4.x does not know it)
  5   Stateless           varString payload
  6   BroadcastStateless  varString payload; server-internal, never from
                          a client (the server closes a client sending it)
  7   Close               client → server: empty (leave this document);
                          server → client: varString reason
  8   SyncStatus          varUint 1 applied / 0 rejected; the server sends
                          one after every step2 and update it receives
  9   Ping                bare byte; a 4.x provider answers Pong
 10   Pong                bare byte
====  ==================  ==================================================

Decoding errors raise :class:`~collab.errors.ProtocolError` (1002), so the
session closes the one socket that sent them with a precise code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from enum import IntEnum

from ..errors import ProtocolError
from . import lib0
from . import ywebsocket as yp

__all__ = [
    "PING",
    "PONG",
    "AuthToken",
    "AuthType",
    "Authenticated",
    "Awareness",
    "BroadcastStateless",
    "Close",
    "Message",
    "MessageType",
    "PermissionDenied",
    "Ping",
    "Pong",
    "QueryAwareness",
    "Scope",
    "Stateless",
    "Sync",
    "SyncStatus",
    "decode_frame",
    "split_address",
]


class MessageType(IntEnum):
    SYNC = 0
    AWARENESS = 1
    AUTH = 2
    QUERY_AWARENESS = 3
    SYNC_REPLY = 4
    STATELESS = 5
    BROADCAST_STATELESS = 6
    CLOSE = 7
    SYNC_STATUS = 8
    PING = 9
    PONG = 10


class AuthType(IntEnum):
    TOKEN = 0
    PERMISSION_DENIED = 1
    AUTHENTICATED = 2


class Scope(enum.StrEnum):
    """The scope an Authenticated message grants (the provider's ``authorizedScope``)."""

    READ_ONLY = "readonly"
    READ_WRITE = "read-write"


PING = bytes((MessageType.PING,))
PONG = bytes((MessageType.PONG,))

# The separator @hocuspocus/common puts between a document name and a session id.
SESSION_SEPARATOR = "\0"


def split_address(address: str) -> tuple[str, str | None]:
    """``"doc"`` → ``("doc", None)``; ``"doc\\0s1"`` → ``("doc", "s1")``."""
    name, sep, session = address.partition(SESSION_SEPARATOR)
    return (name, session) if sep else (name, None)


# -- decoded messages ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sync:
    address: str
    message: yp.SyncMessage
    reply: bool = False  # arrived as SyncReply (4): answer a step1 without our own step1


@dataclass(frozen=True, slots=True)
class Awareness:
    address: str
    update: bytes


@dataclass(frozen=True, slots=True)
class AuthToken:
    address: str
    token: str
    version: str | None = None  # the provider's version, sent by 4.x providers


@dataclass(frozen=True, slots=True)
class PermissionDenied:
    address: str
    reason: str


@dataclass(frozen=True, slots=True)
class Authenticated:
    address: str
    scope: str


@dataclass(frozen=True, slots=True)
class QueryAwareness:
    address: str


@dataclass(frozen=True, slots=True)
class Stateless:
    address: str
    payload: str


@dataclass(frozen=True, slots=True)
class BroadcastStateless:
    address: str
    payload: str


@dataclass(frozen=True, slots=True)
class Close:
    address: str
    reason: str | None = None  # only the server sends one


@dataclass(frozen=True, slots=True)
class SyncStatus:
    address: str
    applied: bool


@dataclass(frozen=True, slots=True)
class Ping:
    pass


@dataclass(frozen=True, slots=True)
class Pong:
    pass


Addressed = (
    Sync
    | Awareness
    | AuthToken
    | PermissionDenied
    | Authenticated
    | QueryAwareness
    | Stateless
    | BroadcastStateless
    | Close
    | SyncStatus
)
Message = Addressed | Ping | Pong


def decode_frame(frame: bytes) -> Message:
    """Decode one frame, in either direction. Trailing bytes are ignored (as lib0 does)."""
    if not frame:
        raise ProtocolError("empty frame")
    if len(frame) == 1:
        if frame[0] == MessageType.PING:
            return Ping()
        if frame[0] == MessageType.PONG:
            return Pong()
    address, pos = lib0.read_var_string(frame, 0)
    kind, pos = lib0.read_var_uint(frame, pos)
    if kind in (MessageType.SYNC, MessageType.SYNC_REPLY):
        sync, pos = yp.decode_sync(frame, pos)
        return Sync(address, sync, reply=kind == MessageType.SYNC_REPLY)
    if kind == MessageType.AWARENESS:
        update, pos = lib0.read_var_bytes(frame, pos)
        return Awareness(address, update)
    if kind == MessageType.AUTH:
        return _decode_auth(address, frame, pos)
    if kind == MessageType.QUERY_AWARENESS:
        return QueryAwareness(address)
    if kind == MessageType.STATELESS:
        payload, pos = lib0.read_var_string(frame, pos)
        return Stateless(address, payload)
    if kind == MessageType.BROADCAST_STATELESS:
        payload, pos = lib0.read_var_string(frame, pos)
        return BroadcastStateless(address, payload)
    if kind == MessageType.CLOSE:
        reason = None
        if pos < len(frame):
            reason, pos = lib0.read_var_string(frame, pos)
        return Close(address, reason)
    if kind == MessageType.SYNC_STATUS:
        status, pos = lib0.read_var_uint(frame, pos)
        return SyncStatus(address, status == 1)
    if kind in (MessageType.PING, MessageType.PONG):
        name = MessageType(kind).name.title()
        raise ProtocolError(f"{name} is one bare byte, without a document")
    raise ProtocolError(f"unknown message type {kind}")


def _decode_auth(address: str, frame: bytes, pos: int) -> Message:
    sub, pos = lib0.read_var_uint(frame, pos)
    if sub == AuthType.TOKEN:
        token, pos = lib0.read_var_string(frame, pos)
        version = None
        if pos < len(frame):  # 4.x providers append their version
            version, pos = lib0.read_var_string(frame, pos)
        return AuthToken(address, token, version)
    if sub == AuthType.PERMISSION_DENIED:
        reason, pos = lib0.read_var_string(frame, pos)
        return PermissionDenied(address, reason)
    if sub == AuthType.AUTHENTICATED:
        scope, pos = lib0.read_var_string(frame, pos)
        return Authenticated(address, scope)
    raise ProtocolError(f"unknown auth message type {sub}")


# -- encoders -----------------------------------------------------------------


def _head(address: str, kind: MessageType) -> bytes:
    return lib0.write_var_string(address) + bytes((kind,))


def encode_sync(address: str, sub: yp.SyncType, payload: bytes, *, reply: bool = False) -> bytes:
    kind = MessageType.SYNC_REPLY if reply else MessageType.SYNC
    return _head(address, kind) + yp.encode_sync(sub, payload)


def encode_step1(address: str, state_vector: bytes) -> bytes:
    return encode_sync(address, yp.SyncType.STEP1, state_vector)


def encode_step2(address: str, update: bytes) -> bytes:
    return encode_sync(address, yp.SyncType.STEP2, update)


def encode_update(address: str, update: bytes) -> bytes:
    return encode_sync(address, yp.SyncType.UPDATE, update)


def encode_awareness(address: str, update: bytes) -> bytes:
    return _head(address, MessageType.AWARENESS) + lib0.write_var_bytes(update)


def encode_auth_token(address: str, token: str, version: str | None = None) -> bytes:
    out = _head(address, MessageType.AUTH) + bytes((AuthType.TOKEN,)) + lib0.write_var_string(token)
    return out + lib0.write_var_string(version) if version is not None else out


def encode_permission_denied(address: str, reason: str) -> bytes:
    return (
        _head(address, MessageType.AUTH)
        + bytes((AuthType.PERMISSION_DENIED,))
        + lib0.write_var_string(reason)
    )


def encode_authenticated(address: str, scope: Scope) -> bytes:
    return (
        _head(address, MessageType.AUTH)
        + bytes((AuthType.AUTHENTICATED,))
        + lib0.write_var_string(scope.value)
    )


def encode_query_awareness(address: str) -> bytes:
    return _head(address, MessageType.QUERY_AWARENESS)


def encode_stateless(address: str, payload: str) -> bytes:
    return _head(address, MessageType.STATELESS) + lib0.write_var_string(payload)


def encode_broadcast_stateless(address: str, payload: str) -> bytes:
    return _head(address, MessageType.BROADCAST_STATELESS) + lib0.write_var_string(payload)


def encode_close(address: str, reason: str | None = None) -> bytes:
    head = _head(address, MessageType.CLOSE)
    return head if reason is None else head + lib0.write_var_string(reason)


def encode_sync_status(address: str, applied: bool) -> bytes:
    return _head(address, MessageType.SYNC_STATUS) + bytes((1 if applied else 0,))


# -- labels for metrics ---------------------------------------------------------

_SYNC_NAMES = ("SyncStep1", "SyncStep2", "SyncUpdate")
_AUTH_NAMES = ("AuthToken", "PermissionDenied", "Authenticated")
_TYPE_NAMES: dict[int, str] = {
    MessageType.AWARENESS: "Awareness",
    MessageType.QUERY_AWARENESS: "QueryAwareness",
    MessageType.STATELESS: "Stateless",
    MessageType.BROADCAST_STATELESS: "BroadcastStateless",
    MessageType.CLOSE: "Close",
    MessageType.SYNC_STATUS: "SyncStatus",
}

_BARE_NAMES: dict[int, str] = {MessageType.PING: "Ping", MessageType.PONG: "Pong"}


def message_kind(msg: Message) -> str:
    """A metrics label for a decoded message (sync messages by sub-type)."""
    if isinstance(msg, Sync):
        return type(msg.message).__name__
    return type(msg).__name__


def frame_kind(frame: bytes) -> str:
    """The same label from a frame's first bytes, without decoding it: cheap
    enough for every outbound frame. Anything odd is "unknown"."""
    if len(frame) == 1:
        return _BARE_NAMES.get(frame[0], "unknown")
    try:
        length, pos = lib0.read_var_uint(frame, 0)
    except ProtocolError:
        return "unknown"
    pos += length
    if pos >= len(frame):
        return "unknown"
    kind = frame[pos]
    sub = frame[pos + 1] if pos + 1 < len(frame) else len(_SYNC_NAMES)
    if kind in (MessageType.SYNC, MessageType.SYNC_REPLY):
        return _SYNC_NAMES[sub] if sub < len(_SYNC_NAMES) else "unknown"
    if kind == MessageType.AUTH:
        return _AUTH_NAMES[sub] if sub < len(_AUTH_NAMES) else "unknown"
    return _TYPE_NAMES.get(kind, "unknown")
