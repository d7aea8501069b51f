"""Batched writes of room updates to the store.

Each room's changes are buffered and written as one merged update a short
debounce after the last change, and never later than ``max_wait`` after the
first unwritten one. A failed write keeps the buffer and is retried with
backoff (nothing acknowledged by a client is dropped because the database
blinked); the failure is logged and reported to health. Past
``compact_threshold`` log rows the room's log is folded into its snapshot.

The buffer is bounded: a room whose unstored updates pass ``buffer_bytes``
(a long outage under heavy editing) has them replaced by one update holding
its whole document, which contains them all (Yjs updates are idempotent), so
an outage costs at most the document plus the bound per room, counted in
``collab_store_buffer_collapsed``. What could still not be stored when the
writer closes is in :meth:`Writer.unsaved`, so shutdown can say so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc, merge_updates

from ..backoff import backoff_delay
from ..errors import StoreError
from ..rooms.room import Origin, Room, StoreOrigin
from ..tasks import TaskSet
from .base import Store

log = logging.getLogger("collab.stores.writer")

# Retries after a failed write: RETRY_MIN plus full-jitter backoff up to RETRY_CAP.
RETRY_MIN = 0.1
RETRY_BASE = 0.25
RETRY_CAP = 5.0


class _Pending:
    __slots__ = (
        "attempts",
        "base",
        "collapsing",
        "doc",
        "first_at",
        "lock",
        "size",
        "timer",
        "updates",
        "writing",
    )

    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.size = 0
        # The size of the last snapshot the buffer was folded into: the bound
        # counts what came after it (no re-encoding on every keystroke).
        self.base = 0
        self.first_at = 0.0
        self.attempts = 0
        # The room's document, to fold the buffer into when it passes its bound.
        self.doc: Doc[Any] | None = None
        self.collapsing = False
        self.timer: asyncio.TimerHandle | None = None
        self.writing: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()


class Writer:
    """Buffers each room's updates and stores them in batches. It is a room
    observer: every update a room integrates is buffered, except those that
    came from the store itself."""

    def __init__(
        self,
        store: Store,
        *,
        debounce: float,
        max_wait: float,
        compact_threshold: int,
        on_result: Callable[[str, float, BaseException | None], None] | None = None,
        on_stored: Callable[[str, int], Awaitable[None]] | None = None,
        buffer_bytes: int = 1 << 62,
        on_collapse: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.debounce = debounce
        self.max_wait = max_wait
        self.compact_threshold = compact_threshold
        self._pending: dict[str, _Pending] = {}
        self._on_result = on_result
        self._on_stored = on_stored
        self._buffer_bytes = buffer_bytes
        self._on_collapse = on_collapse
        self._closed = False
        self._tasks = TaskSet("store writer")

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if not isinstance(origin, StoreOrigin):
            self.add(room.name, update, room.doc)

    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        pass

    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None:
        pass

    def add(self, room: str, update: bytes, doc: Doc[Any] | None = None) -> None:
        """Buffer an update and (re)arm the room's timer."""
        p = self._pending.get(room)
        if p is None:
            p = self._pending[room] = _Pending()
        if doc is not None:
            p.doc = doc
        now = time.monotonic()
        if not p.updates:
            p.first_at = now
        p.updates.append(update)
        p.size += len(update)
        if p.size - p.base > self._buffer_bytes and p.doc is not None and not p.collapsing:
            # Not here: this runs inside the document's own transaction (the
            # room's observer), where pycrdt cannot encode the document.
            p.collapsing = True
            asyncio.get_running_loop().call_soon(self._collapse, room, p)
        if p.attempts:
            return  # failing: the retry timer is armed, with backoff
        if p.timer is not None:
            p.timer.cancel()
        delay = min(self.debounce, max(0.0, p.first_at + self.max_wait - now))
        p.timer = asyncio.get_running_loop().call_later(delay, self._fire, room)

    def _collapse(self, room: str, p: _Pending) -> None:
        p.collapsing = False
        doc = p.doc
        if doc is None or p.size - p.base <= self._buffer_bytes or self._pending.get(room) is not p:
            return  # written (or unloaded) meanwhile
        snapshot = doc.get_update()
        log.warning(
            "unstored edits of room %r passed %d bytes: kept as one %d-byte "
            "snapshot of the document",
            room,
            self._buffer_bytes,
            len(snapshot),
        )
        p.updates, p.size = [snapshot], len(snapshot)
        p.base = p.size
        if self._on_collapse is not None:
            self._on_collapse()

    def unsaved(self) -> list[str]:
        """Rooms with edits the store has not taken."""
        return sorted(room for room, p in self._pending.items() if p.updates)

    def _fire(self, room: str) -> None:
        p = self._pending.get(room)
        if p is None or self._closed:
            return
        p.timer = None
        if p.writing is None or p.writing.done():
            p.writing = self._tasks.spawn(self._write(room), name=f"store {room}")

    async def _write(self, room: str) -> None:
        try:
            await self.flush(room)
        except StoreError:
            pass  # logged and reported by flush(), retried on its timer

    async def flush(self, room: str) -> None:
        """Write the room's buffer now (after a write already under way: one
        at a time per room, or a batch in flight could be forgotten)."""
        while (p := self._pending.get(room)) is not None:
            async with p.lock:
                if self._pending.get(room) is p:
                    await self._flush_locked(room, p)
                    return

    async def _flush_locked(self, room: str, p: _Pending) -> None:
        while p.updates:
            batch = p.updates
            p.updates, p.size = [], 0
            started = time.monotonic()
            try:
                data = batch[0] if len(batch) == 1 else merge_updates(*batch)
                rows = await self.store.append(room, data)
                if rows > self.compact_threshold:
                    await self.store.compact(room)
            except BaseException as exc:
                p.updates[:0] = batch  # keep order; retry later
                p.size += sum(map(len, batch))
                if not isinstance(exc, StoreError):
                    raise  # cancelled (shutdown) or a bug: the batch is kept all the same
                self._report(room, started, exc)
                delay = RETRY_MIN + backoff_delay(p.attempts, RETRY_BASE, RETRY_CAP)
                p.attempts += 1
                log.error(
                    "storing room %r failed (attempt %d), retrying in %.1fs: %s",
                    room,
                    p.attempts,
                    delay,
                    exc,
                )
                if not self._closed:
                    if p.timer is not None:
                        p.timer.cancel()
                    p.timer = asyncio.get_running_loop().call_later(delay, self._fire, room)
                raise
            if p.attempts:
                log.info("storing room %r works again after %d failed attempts", room, p.attempts)
            log.debug("stored %d bytes of room %r (log rows: %d)", len(data), room, rows)
            p.attempts = p.base = 0
            self._report(room, started, None)
            if self._on_stored is not None:
                await self._on_stored(room, len(data))
        if not p.updates and p.timer is None:
            self._pending.pop(room, None)

    def _report(self, room: str, started: float, exc: BaseException | None) -> None:
        if self._on_result is not None:
            self._on_result(room, time.monotonic() - started, exc)

    async def drop(self, room: str) -> None:
        """Forget the room's unwritten updates (it is being deleted: writing
        them back would bring it back). A batch already being appended is
        past recall: this waits until it has landed, so that a delete made
        after this returns removes it too."""
        p = self._pending.pop(room, None)
        if p is None:
            return
        if p.timer is not None:
            p.timer.cancel()
            p.timer = None
        p.updates.clear()
        running = p.writing
        if running is not None and running is not asyncio.current_task() and not running.done():
            await asyncio.wait([running])

    async def flush_all(self) -> None:
        """Flush every room at once (shutdown: one store timeout in all, not
        one per room); errors are logged, not raised."""
        await asyncio.gather(*(self._flush_now(room) for room in list(self._pending)))

    async def _flush_now(self, room: str) -> None:
        p = self._pending.get(room)
        if p is not None and p.timer is not None:
            p.timer.cancel()
            p.timer = None
        try:
            await self.flush(room)
        except StoreError:
            pass  # already logged with the cause by flush()

    async def close(self) -> None:
        self._closed = True  # no retry timer from here on: one last attempt each
        await self.flush_all()
        await self._tasks.aclose()
