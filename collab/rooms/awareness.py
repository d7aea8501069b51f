"""A room's awareness table: every client's presence, by client id.

The Yjs rule decides what an entry changes: a higher clock wins; an equal
clock with a null state is a removal; older clocks are ignored.
"""

from __future__ import annotations

from ..wire.awareness import NULL_STATE, Entry


class AwarenessTable:
    """The room's view of every client's presence, keyed by client id."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, client_id: object) -> bool:
        return client_id in self._entries

    def apply(self, entries: list[Entry]) -> list[Entry]:
        """Apply entries; return those that changed something (to relay).

        Yjs rule: a higher clock wins; an equal clock with a null state is a
        removal. Older clocks are ignored.
        """
        changed: list[Entry] = []
        for e in entries:
            known = self._entries.get(e.client_id)
            if known is not None and (
                e.clock < known.clock or (e.clock == known.clock and e.state != NULL_STATE)
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
