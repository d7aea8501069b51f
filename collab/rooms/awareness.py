"""A room's awareness table: every client's presence, by client id.

The Yjs rule decides what an entry changes: a higher clock wins; an equal
clock with a null state is a removal; older clocks are ignored. As in
y-protocols, a removed client's clock is remembered: y-websocket providers
re-broadcast every state they hear of, and an echo of a state we already
removed must not bring it back as an orphan nobody will ever remove.
"""

from __future__ import annotations

from ..wire.awareness import NULL_STATE, Entry

# Removed clients whose clock is remembered, per room; the oldest go first.
# An echo arrives within moments of a removal: a few thousand is plenty.
TOMBSTONES = 4096


class AwarenessTable:
    """The room's view of every client's presence, keyed by client id."""

    def __init__(self) -> None:
        self._entries: dict[int, Entry] = {}
        self._removed: dict[int, int] = {}  # client id -> clock of its removal

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
            if not self.accepts(e):
                continue
            if e.state == NULL_STATE:
                del self._entries[e.client_id]
                self._tombstone(e.client_id, e.clock)
            else:
                self._entries[e.client_id] = e
                self._removed.pop(e.client_id, None)
            changed.append(e)
        return changed

    def accepts(self, e: Entry) -> bool:
        """Whether ``e`` would change the table (the Yjs rule, tombstones included)."""
        known = self._entries.get(e.client_id)
        if known is None:
            if e.state == NULL_STATE:
                return False  # nothing to remove
            removed_at = self._removed.get(e.client_id)
            return removed_at is None or e.clock > removed_at
        return e.clock > known.clock or (e.clock == known.clock and e.state == NULL_STATE)

    def _tombstone(self, client_id: int, clock: int) -> None:
        self._removed[client_id] = clock
        if len(self._removed) > TOMBSTONES:
            del self._removed[next(iter(self._removed))]

    def remove(self, client_ids: set[int]) -> list[Entry]:
        """Remove clients (their socket closed); return the removal entries."""
        removed: list[Entry] = []
        for cid in sorted(client_ids):
            known = self._entries.pop(cid, None)
            if known is not None:
                removed.append(Entry(cid, known.clock + 1, NULL_STATE))
                self._tombstone(cid, known.clock + 1)
        return removed

    def snapshot(self) -> list[Entry]:
        return list(self._entries.values())
