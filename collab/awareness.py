"""Awareness (presence) updates: pure decode/encode and the server's table.

An awareness update is ``varUint count`` then, per client, ``varUint
clientID, varUint clock, varString JSON state``; the state ``null`` means the
client left. The server keeps raw JSON text (validated once) so that re-encoding
for a late joiner never re-serialises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from .errors import InvalidPayload, ProtocolError
from .protocol import read_var_string, read_var_uint, write_var_string, write_var_uint

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


class AwarenessTable:
    """The room's view of every client's presence, keyed by client id."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def apply(self, entries: list[Entry]) -> list[Entry]:
        """Apply entries; return those that changed something (to relay).

        Yjs rule: a higher clock wins; an equal clock with a null state is a
        removal. Older clocks are ignored.
        """
        changed: list[Entry] = []
        for e in entries:
            known = self._entries.get(e.client_id)
            if known is not None and (
                e.clock < known.clock
                or (e.clock == known.clock and e.state != NULL_STATE)
            ):
                continue
            if e.state == NULL_STATE:
                if known is None:
                    continue
                del self._entries[e.client_id]
            else:
                self._entries[e.client_id] = e
            changed.append(e)
        return changed

    def remove(self, client_ids: set[int]) -> list[Entry]:
        """Remove clients (their socket closed); return the removal entries."""
        removed: list[Entry] = []
        for cid in sorted(client_ids):
            known = self._entries.pop(cid, None)
            if known is not None:
                removed.append(Entry(cid, known.clock + 1, NULL_STATE))
        return removed

    def snapshot(self) -> list[Entry]:
        return list(self._entries.values())
