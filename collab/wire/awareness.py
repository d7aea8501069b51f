"""Awareness (presence) updates: pure decode and encode.

An awareness update is ``varUint count`` then, per client, ``varUint
clientID, varUint clock, varString JSON state``; the state ``null`` means the
client left. States stay raw JSON text (validated once), so that re-encoding for a
late joiner never re-serialises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..errors import InvalidPayload, ProtocolError
from .lib0 import read_var_string, read_var_uint, write_var_string, write_var_uint

NULL_STATE = "null"


@dataclass(frozen=True, slots=True)
class Entry:
    client_id: int
    clock: int
    state: str  # JSON text; "null" = removed


def decode_update(update: bytes) -> list[Entry]:
    """Decode and validate an awareness update; invalid JSON raises 1007."""
    count, pos = read_var_uint(update, 0)
    entries: list[Entry] = []
    for _ in range(count):
        client_id, pos = read_var_uint(update, pos)
        clock, pos = read_var_uint(update, pos)
        state, pos = read_var_string(update, pos)
        try:
            json.loads(state)
        except ValueError as exc:
            raise InvalidPayload(f"awareness state of client {client_id} is not JSON") from exc
        entries.append(Entry(client_id, clock, state))
    if pos != len(update):
        raise ProtocolError("trailing bytes after awareness update")
    return entries


def encode_update(entries: list[Entry]) -> bytes:
    parts = [write_var_uint(len(entries))]
    for e in entries:
        parts.append(write_var_uint(e.client_id))
        parts.append(write_var_uint(e.clock))
        parts.append(write_var_string(e.state))
    return b"".join(parts)
