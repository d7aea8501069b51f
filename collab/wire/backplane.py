"""The cross-instance message format, as pure functions over bytes (no I/O).

Every backplane payload is::

    kind (1 byte) · varString sender instance id · varString connection id · body

The instance id lets an instance drop its own echo (pub/sub delivers to the
publisher too) and never re-publish a remote change; the connection id is the
socket that made the change ("" for server-made messages), so a log line on
any instance names it (the API Gateway incident: a lost connection id).

=============  ===============================================================
kind           body
=============  ===============================================================
1 UPDATE       a Yjs update (rest of the payload)
2 AWARENESS    an awareness update, y-protocols encoding (rest)
3 STATELESS    UTF-8 text (rest)
4 SYNC_REQ     the sender's state vector (rest): "send me what I lack"
5 SYNC_REPLY   varString target instance · varUint8Array the update the target
               lacks · the replier's state vector (rest), so the target can send
               back what the replier lacks
6 CONN_SEND    varString request id · varString room ("" = every document of the
               connection) · UTF-8 stateless payload (rest)
7 CONN_CLOSE   varString request id · varUint close code · UTF-8 reason (rest)
8 ROOM_CLOSE   varString room · varUint close code · varUint flags (1 = the room
               is deleted: drop it unstored) · UTF-8 reason (rest)
9 ACK          varString target instance · varString request id · varUint status
               (0 done, 1 the connection's protocol has no stateless messages) ·
               varUint count (documents or sockets reached)
=============  ===============================================================

Kinds 1-5 travel on a room's channel. Kinds 6-9 travel on the control channel
(:mod:`collab.backplane.control`): the connection id of CONN_SEND, CONN_CLOSE
and ACK is the *target* socket's, which only the instance holding it acts on.

Lengths use lib0 varUint, as the Yjs protocols do. A payload starting with
``0xff`` is no message: the Redis backplane's pointer to a large message
(``collab.backplane.redis_blobs``), resolved before the replicator sees it. Decoding errors raise
:class:`~collab.errors.BackplaneError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import BackplaneError, ProtocolError
from .lib0 import (
    read_var_bytes,
    read_var_string,
    read_var_uint,
    write_var_bytes,
    write_var_string,
    write_var_uint,
)


class Kind(IntEnum):
    UPDATE = 1
    AWARENESS = 2
    STATELESS = 3
    SYNC_REQUEST = 4
    SYNC_REPLY = 5
    CONN_SEND = 6
    CONN_CLOSE = 7
    ROOM_CLOSE = 8
    ACK = 9


class AckStatus(IntEnum):
    DONE = 0
    NO_STATELESS = 1


@dataclass(frozen=True, slots=True)
class Update:
    sender: str
    update: bytes
    connection: str = ""


@dataclass(frozen=True, slots=True)
class Awareness:
    sender: str
    update: bytes
    connection: str = ""


@dataclass(frozen=True, slots=True)
class Stateless:
    sender: str
    payload: str
    connection: str = ""


@dataclass(frozen=True, slots=True)
class SyncRequest:
    sender: str
    state_vector: bytes
    connection: str = ""


@dataclass(frozen=True, slots=True)
class SyncReply:
    sender: str
    target: str
    update: bytes
    state_vector: bytes
    connection: str = ""


@dataclass(frozen=True, slots=True)
class ConnSend:
    sender: str
    request: str
    room: str
    payload: str
    connection: str = ""


@dataclass(frozen=True, slots=True)
class ConnClose:
    sender: str
    request: str
    code: int
    reason: str
    connection: str = ""


@dataclass(frozen=True, slots=True)
class RoomClose:
    sender: str
    room: str
    code: int
    reason: str
    delete: bool = False
    connection: str = ""


@dataclass(frozen=True, slots=True)
class Ack:
    sender: str
    target: str
    request: str
    status: AckStatus
    count: int
    connection: str = ""


Message = (
    Update
    | Awareness
    | Stateless
    | SyncRequest
    | SyncReply
    | ConnSend
    | ConnClose
    | RoomClose
    | Ack
)


def encode(msg: Message) -> bytes:
    """Encode a message for the backplane."""
    if isinstance(msg, Update):
        kind, body = Kind.UPDATE, msg.update
    elif isinstance(msg, Awareness):
        kind, body = Kind.AWARENESS, msg.update
    elif isinstance(msg, Stateless):
        kind, body = Kind.STATELESS, msg.payload.encode("utf-8")
    elif isinstance(msg, SyncRequest):
        kind, body = Kind.SYNC_REQUEST, msg.state_vector
    elif isinstance(msg, SyncReply):
        kind = Kind.SYNC_REPLY
        body = write_var_string(msg.target) + write_var_bytes(msg.update) + msg.state_vector
    else:
        kind, body = _encode_control(msg)
    return bytes((kind,)) + write_var_string(msg.sender) + write_var_string(msg.connection) + body


def decode(data: bytes) -> Message:
    """Decode a backplane payload; malformed input raises BackplaneError."""
    if not data:
        raise BackplaneError("empty backplane message")
    try:
        kind = Kind(data[0])
    except ValueError:
        raise BackplaneError(f"unknown backplane message kind {data[0]}") from None
    try:
        sender, pos = read_var_string(data, 1)
        connection, pos = read_var_string(data, pos)
        rest = bytes(data[pos:])
        if kind is Kind.UPDATE:
            return Update(sender, rest, connection)
        if kind is Kind.AWARENESS:
            return Awareness(sender, rest, connection)
        if kind is Kind.STATELESS:
            return Stateless(sender, rest.decode("utf-8"), connection)
        if kind is Kind.SYNC_REQUEST:
            return SyncRequest(sender, rest, connection)
        if kind is Kind.SYNC_REPLY:
            target, pos = read_var_string(data, pos)
            update, pos = read_var_bytes(data, pos)
            return SyncReply(sender, target, update, bytes(data[pos:]), connection)
        return _decode_control(kind, sender, connection, data, pos)
    except ProtocolError as exc:
        raise BackplaneError(f"malformed {kind.name} backplane message: {exc.reason}") from None
    except UnicodeDecodeError:
        raise BackplaneError(f"malformed {kind.name} backplane message: not UTF-8") from None


def _encode_control(msg: ConnSend | ConnClose | RoomClose | Ack) -> tuple[Kind, bytes]:
    if isinstance(msg, ConnSend):
        return Kind.CONN_SEND, (
            write_var_string(msg.request) + write_var_string(msg.room) + msg.payload.encode("utf-8")
        )
    if isinstance(msg, ConnClose):
        return Kind.CONN_CLOSE, (
            write_var_string(msg.request) + write_var_uint(msg.code) + msg.reason.encode("utf-8")
        )
    if isinstance(msg, RoomClose):
        return Kind.ROOM_CLOSE, (
            write_var_string(msg.room)
            + write_var_uint(msg.code)
            + write_var_uint(int(msg.delete))
            + msg.reason.encode("utf-8")
        )
    return Kind.ACK, (
        write_var_string(msg.target)
        + write_var_string(msg.request)
        + write_var_uint(msg.status)
        + write_var_uint(msg.count)
    )


def _decode_control(kind: Kind, sender: str, connection: str, data: bytes, pos: int) -> Message:
    if kind is Kind.CONN_SEND:
        request, pos = read_var_string(data, pos)
        room, pos = read_var_string(data, pos)
        return ConnSend(sender, request, room, bytes(data[pos:]).decode("utf-8"), connection)
    if kind is Kind.CONN_CLOSE:
        request, pos = read_var_string(data, pos)
        code, pos = read_var_uint(data, pos)
        return ConnClose(sender, request, code, bytes(data[pos:]).decode("utf-8"), connection)
    if kind is Kind.ROOM_CLOSE:
        room, pos = read_var_string(data, pos)
        code, pos = read_var_uint(data, pos)
        flags, pos = read_var_uint(data, pos)
        return RoomClose(
            sender, room, code, bytes(data[pos:]).decode("utf-8"), bool(flags & 1), connection
        )
    target, pos = read_var_string(data, pos)
    request, pos = read_var_string(data, pos)
    status, pos = read_var_uint(data, pos)
    count, pos = read_var_uint(data, pos)
    try:
        ack_status = AckStatus(status)
    except ValueError:
        raise BackplaneError(f"malformed ACK backplane message: status {status}") from None
    return Ack(sender, target, request, ack_status, count, connection)
