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
=============  ===============================================================

Lengths use lib0 varUint, as the Yjs protocols do. A payload starting with
``0xff`` is no message: the Redis backplane's pointer to a large message
(``collab.backplane.redis_blobs``), resolved before the replicator sees it. Decoding errors raise
:class:`~collab.errors.BackplaneError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from ..errors import BackplaneError, ProtocolError
from .lib0 import read_var_bytes, read_var_string, write_var_bytes, write_var_string


class Kind(IntEnum):
    UPDATE = 1
    AWARENESS = 2
    STATELESS = 3
    SYNC_REQUEST = 4
    SYNC_REPLY = 5


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


Message = Update | Awareness | Stateless | SyncRequest | SyncReply


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
    else:
        kind = Kind.SYNC_REPLY
        body = write_var_string(msg.target) + write_var_bytes(msg.update) + msg.state_vector
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
        target, pos = read_var_string(data, pos)
        update, pos = read_var_bytes(data, pos)
        return SyncReply(sender, target, update, bytes(data[pos:]), connection)
    except ProtocolError as exc:
        raise BackplaneError(f"malformed {kind.name} backplane message: {exc.reason}") from None
    except UnicodeDecodeError:
        raise BackplaneError(f"malformed {kind.name} backplane message: not UTF-8") from None
