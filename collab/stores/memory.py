"""In-process store: for tests and for ephemeral rooms (``memory://``)."""

from __future__ import annotations

import asyncio

from .base import squash


class MemoryStore:
    name = "memory"

    def __init__(self) -> None:
        self._snapshots: dict[str, tuple[int, bytes]] = {}
        self._logs: dict[str, list[bytes]] = {}

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def load(self, room: str) -> bytes | None:
        parts = self._parts(room)
        return squash(parts) if parts else None

    async def append(self, room: str, update: bytes) -> int:
        log = self._logs.setdefault(room, [])
        log.append(update)
        return len(log)

    async def compact(self, room: str) -> None:
        version, _ = self._snapshots.get(room, (0, b""))
        parts = self._parts(room)
        taken = len(self._logs.get(room, []))
        if not taken:
            return
        await asyncio.sleep(0)  # let concurrent appends interleave, as a real store would
        # Compare-and-set: only this coroutine runs between here and the write.
        if self._snapshots.get(room, (0, b""))[0] != version:
            return await self.compact(room)
        self._snapshots[room] = (version + 1, squash(parts))
        del self._logs[room][:taken]

    async def check(self) -> None:
        return None

    async def delete(self, room: str) -> bool:
        had = bool(self._parts(room))
        self._snapshots.pop(room, None)
        self._logs.pop(room, None)
        return had

    async def rooms(self) -> list[str]:
        return sorted({name for name in (*self._snapshots, *self._logs) if self._parts(name)})

    def _parts(self, room: str) -> list[bytes]:
        snap = self._snapshots.get(room)
        head = [snap[1]] if snap else []
        return head + list(self._logs.get(room, []))
