"""The Store interface, and the squash used by every compaction.

A stored document is a *snapshot* (one merged update, with a version) plus
an append-only *log* of updates. Appends never conflict, so any number of
instances may append to one document at once. Compaction folds the log into
the snapshot with compare-and-set on the version: a writer that lost the race
re-reads and retries, so nothing appended meanwhile is lost (the CloudFront
etag incident: concurrent writers without a version lost updates).
"""

from __future__ import annotations

from typing import Any, Protocol

from pycrdt import Doc


class Store(Protocol):
    name: str

    async def open(self) -> None:
        """Connect / create the schema. Raises StoreError with the cause."""

    async def close(self) -> None: ...

    async def load(self, room: str) -> bytes | None:
        """The whole document as one update, or None if never stored."""

    async def append(self, room: str, update: bytes) -> int:
        """Append one update to the log; return the log's length after it."""

    async def compact(self, room: str) -> None:
        """Fold the log into the snapshot (compare-and-set, retried on conflict)."""

    async def check(self) -> None:
        """A cheap round trip for the readiness check; raises StoreError."""

    async def delete(self, room: str) -> bool:
        """Remove the document (snapshot and log); False if nothing was stored."""

    async def rooms(self) -> list[str]:
        """The names of every stored document, sorted."""


def squash(updates: list[bytes]) -> bytes:
    """Merge updates into one, through a Doc so deleted content is collected.

    (``merge_updates`` would keep every deleted character forever, and a
    long-edited document's snapshot would only grow.)
    """
    doc: Doc[Any] = Doc()
    with doc.transaction():
        for update in updates:
            doc.apply_update(update)
    return doc.get_update()
