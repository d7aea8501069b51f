"""Does an update add anything to a document? (The read-only step2 rule.)

A read-only provider still answers our step1 with a step2 holding everything
it has that we lack — usually nothing, but never literally empty: a Yjs
update always carries its whole delete set. Hocuspocus acknowledges such a
step2 with SyncStatus 1 when the update is contained in the document
(``Y.snapshotContainsUpdate``) and 0 otherwise; a provider that got 0 keeps
``hasUnsyncedChanges`` true forever, so a read-only editor would show
"saving…" for good. We apply the same rule without building a snapshot: every
struct must be below our state vector, and every deleted range must already
be deleted here.
"""

from __future__ import annotations

import bisect

from pycrdt import get_state, get_update

from ..errors import InvalidPayload, is_pycrdt_rejection
from ..wire.lib0 import read_var_uint


def decode_state_vector(sv: bytes) -> dict[int, int]:
    count, pos = read_var_uint(sv, 0)
    out: dict[int, int] = {}
    for _ in range(count):
        client, pos = read_var_uint(sv, pos)
        clock, pos = read_var_uint(sv, pos)
        out[client] = clock
    return out


def decode_delete_set(update: bytes) -> dict[int, list[tuple[int, int]]]:
    """The delete set of an update that carries no structs (``[start, end)`` ranges)."""
    structs, pos = read_var_uint(update, 0)
    if structs:
        raise ValueError("expected an update without structs")
    clients, pos = read_var_uint(update, pos)
    out: dict[int, list[tuple[int, int]]] = {}
    for _ in range(clients):
        client, pos = read_var_uint(update, pos)
        n, pos = read_var_uint(update, pos)
        ranges = out.setdefault(client, [])
        for _ in range(n):
            clock, pos = read_var_uint(update, pos)
            length, pos = read_var_uint(update, pos)
            ranges.append((clock, clock + length))
    return out


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _covered(merged: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect.bisect_right(merged, (start, float("inf"))) - 1
    return i >= 0 and merged[i][0] <= start and end <= merged[i][1]


def adds_nothing(update: bytes, state_vector: bytes, deletions: bytes) -> bool:
    """True when applying ``update`` to a document would change nothing.

    ``state_vector`` is the document's; ``deletions`` its delete set as a
    struct-less update (``doc.get_update(doc.get_state())``). Raises
    :class:`~collab.errors.InvalidPayload` for an update pycrdt cannot read.
    """
    try:
        update_sv = get_state(update)
        update_deletions = get_update(update, update_sv)
    except BaseException as exc:
        if not is_pycrdt_rejection(exc):
            raise
        raise InvalidPayload(f"update rejected: {exc}") from None
    known = decode_state_vector(state_vector)
    for client, clock in decode_state_vector(update_sv).items():
        if clock > known.get(client, 0):
            return False
    deleted = {c: _merge(r) for c, r in decode_delete_set(deletions).items()}
    for client, ranges in decode_delete_set(update_deletions).items():
        have = deleted.get(client, [])
        if not all(_covered(have, start, end) for start, end in ranges if end > start):
            return False
    return True
