"""Every store call bounded in time (``COLLAB_STORE_TIMEOUT``).

A database that hangs (frozen, partitioned, a lock held forever) keeps its
TCP connection open and never answers; without a deadline a room's write,
its unload, a rejoin and shutdown all wait for it forever. Each call runs as
its own task, and the caller stops waiting after ``timeout`` seconds with a
:class:`~collab.errors.StoreError` that says so. The call itself is then
cancelled but not awaited: psycopg, cancelled, first asks the server to
cancel the query and waits for that too, which a frozen server never answers.
The abandoned calls are held until they end, a bounded number (one per
retried write, each ending at its driver's own timeout).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import StoreError
from .base import Store

log = logging.getLogger("collab.stores")

T = TypeVar("T")


class TimedStore:
    """A :class:`Store` whose calls give up after ``timeout`` seconds."""

    def __init__(self, store: Store, timeout: float) -> None:
        self.inner = store
        self.name = store.name
        self.timeout = timeout
        self._abandoned: set[asyncio.Task[Any]] = set()

    def __repr__(self) -> str:
        return f"<TimedStore {self.inner!r} {self.timeout}s>"

    @property
    def abandoned(self) -> int:
        """Calls given up on that have not ended yet."""
        return len(self._abandoned)

    async def _call(self, what: str, coro: Coroutine[Any, Any, T]) -> T:
        task = asyncio.get_running_loop().create_task(coro, name=f"store {what}")
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout)
        except asyncio.CancelledError:
            self._abandon(task)
            raise
        if not done:
            self._abandon(task)
            raise StoreError(f"{what}: no answer within {self.timeout:g}s (COLLAB_STORE_TIMEOUT)")
        # A driver that cancelled its own call is a store failure, not a
        # cancellation of the caller (which would end the caller's task).
        # Other exceptions are bugs and stay what they are (1011, not 1013).
        if task.cancelled():
            raise StoreError(f"{what}: cancelled inside the store driver")
        return task.result()

    def _abandon(self, task: asyncio.Task[Any]) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled() and task.exception() is not None:
            # Already reported as a timeout to the caller; only the detail is new.
            log.debug("abandoned store call ended: %r", task.exception())

    async def open(self) -> None:
        await self.inner.open()  # bounded by the store's own connect timeouts

    async def close(self) -> None:
        try:
            await self._call("close", self.inner.close())
        except StoreError as exc:
            log.error("closing the store: %s", exc)

    async def load(self, room: str) -> bytes | None:
        return await self._call(f"load {room!r}", self.inner.load(room))

    async def append(self, room: str, update: bytes) -> int:
        return await self._call(f"append {room!r}", self.inner.append(room, update))

    async def compact(self, room: str) -> None:
        await self._call(f"compact {room!r}", self.inner.compact(room))

    async def check(self) -> None:
        await self._call("check", self.inner.check())

    async def delete(self, room: str) -> bool:
        return await self._call(f"delete {room!r}", self.inner.delete(room))

    async def rooms(self) -> list[str]:
        return await self._call("rooms", self.inner.rooms())
