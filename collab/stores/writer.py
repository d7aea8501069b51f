"""Batched writes of room updates to the store.

Each room's changes are buffered and written as one merged update a short
debounce after the last change, and never later than ``max_wait`` after the
first unwritten one. A failed write keeps the buffer and is retried (nothing
acknowledged by a client is dropped because the database blinked); the
failure is logged and reported to health. Past ``compact_threshold`` log rows
the room's log is folded into its snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pycrdt import merge_updates

from ..errors import StoreError
from ..rooms.room import Origin, Room, StoreOrigin
from ..tasks import TaskSet
from .base import Store

log = logging.getLogger("collab.stores.writer")

RETRY_DELAY = 1.0


class _Pending:
    __slots__ = ("first_at", "timer", "updates", "writing")

    def __init__(self) -> None:
        self.updates: list[bytes] = []
        self.first_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.writing: asyncio.Task[None] | None = None


class Writer:
    """Buffers each room's updates and stores them in batches. It is a room
    observer: every update a room integrates is buffered, except those that
    came from the store itself."""

    def __init__(self, store: Store, *, debounce: float, max_wait: float,
                 compact_threshold: int,
                 on_result: Callable[[str, float, BaseException | None], None] | None = None,
                 on_stored: Callable[[str, int], Awaitable[None]] | None = None) -> None:
        self.store = store
        self.debounce = debounce
        self.max_wait = max_wait
        self.compact_threshold = compact_threshold
        self._pending: dict[str, _Pending] = {}
        self._on_result = on_result
        self._on_stored = on_stored
        self._closed = False
        self._tasks = TaskSet("store writer")

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None:
        if not isinstance(origin, StoreOrigin):
            self.add(room.name, update)

    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        pass

    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None:
        pass

    def add(self, room: str, update: bytes) -> None:
        """Buffer an update and (re)arm the room's timer."""
        p = self._pending.get(room)
        if p is None:
            p = self._pending[room] = _Pending()
        now = time.monotonic()
        if not p.updates:
            p.first_at = now
        p.updates.append(update)
        if p.timer is not None:
            p.timer.cancel()
        delay = min(self.debounce, max(0.0, p.first_at + self.max_wait - now))
        p.timer = asyncio.get_running_loop().call_later(delay, self._fire, room)

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
        """Write the room's buffer now (waits for a write already under way)."""
        p = self._pending.get(room)
        if p is None:
            return
        running = p.writing
        if running is not None and running is not asyncio.current_task() and not running.done():
            await asyncio.shield(running)
        while p.updates:
            batch = p.updates
            p.updates = []
            started = time.monotonic()
            try:
                data = batch[0] if len(batch) == 1 else merge_updates(*batch)
                rows = await self.store.append(room, data)
                if rows > self.compact_threshold:
                    await self.store.compact(room)
            except StoreError as exc:
                p.updates[:0] = batch  # keep order; retry later
                self._report(room, started, exc)
                log.error("storing room %r failed, will retry: %s", room, exc)
                if not self._closed:
                    p.timer = asyncio.get_running_loop().call_later(RETRY_DELAY, self._fire, room)
                raise
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
        """Flush every room (shutdown); errors are logged, not raised."""
        for room in list(self._pending):
            p = self._pending.get(room)
            if p is not None and p.timer is not None:
                p.timer.cancel()
                p.timer = None
            try:
                await self.flush(room)
            except StoreError:
                pass  # already logged with the cause by flush()

    async def close(self) -> None:
        await self.flush_all()
        self._closed = True
        await self._tasks.aclose()
