"""SQLite store, the embedded default (``sqlite:///collab.sqlite3``).

WAL mode so readers never block the writer; ``auto_vacuum=INCREMENTAL`` so
pages freed by compaction are returned and a long-edited document's file
stays bounded. Several processes may share the file: compaction is a
compare-and-set on the snapshot version, like the PostgreSQL store.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import aiosqlite

from ..errors import ConfigError, StoreError
from .base import squash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    room TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    room TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS updates_room_seq ON updates (room, seq);
"""

_MAX_ATTEMPTS = 20


class SQLiteStore:
    name = "sqlite"

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        # One connection is shared by every coroutine of this process: a lock
        # keeps one coroutine's statements out of another's transaction.
        self._lock = asyncio.Lock()

    @classmethod
    def from_url(cls, url: str) -> SQLiteStore:
        """``sqlite:///rel/path`` is relative to the cwd, ``sqlite:////abs`` absolute."""
        prefix = "sqlite:///"
        if not url.startswith(prefix) or len(url) == len(prefix):
            raise ConfigError(f"COLLAB_STORE_URL {url!r}: expected sqlite:///path/to/file")
        return cls(url[len(prefix) :])

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("SQLite store is not open")
        return self._db

    async def open(self) -> None:
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = await aiosqlite.connect(self.path, timeout=30, isolation_level=None)
            await self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            await self._db.execute("PRAGMA journal_mode=WAL")
            await self._db.execute("PRAGMA synchronous=NORMAL")
            await self._db.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite store {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def load(self, room: str) -> bytes | None:
        try:
            _, parts = await self._read(room)
        except sqlite3.Error as exc:
            raise StoreError(f"load {room!r}: {exc}") from exc
        return squash([p for _, p in parts]) if parts else None

    async def append(self, room: str, update: bytes) -> int:
        try:
            async with self._lock:
                await self.db.execute(
                    "INSERT INTO updates (room, data) VALUES (?, ?)", (room, update)
                )
                async with self.db.execute(
                    "SELECT COUNT(*) FROM updates WHERE room = ?", (room,)
                ) as cur:
                    row = await cur.fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"append {room!r}: {exc}") from exc
        return int(row[0]) if row else 0

    async def compact(self, room: str) -> None:
        for _ in range(_MAX_ATTEMPTS):
            try:
                if await self._compact_once(room):
                    return
            except sqlite3.Error as exc:
                raise StoreError(f"compact {room!r}: {exc}") from exc
        raise StoreError(f"compact {room!r}: still conflicting after {_MAX_ATTEMPTS} attempts")

    async def _compact_once(self, room: str) -> bool:
        """One compare-and-set attempt; False when another writer won."""
        version, parts = await self._read(room)
        upto = max((seq for seq, _ in parts), default=0)
        if upto == 0:
            return True  # empty log: nothing to fold
        # Squash outside any transaction: it is the slow part.
        data = squash([p for _, p in parts])
        async with self._lock:
            return await self._swap(room, version, data, upto)

    async def _swap(self, room: str, version: int, data: bytes, upto: int) -> bool:
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            if version:
                cur2 = await self.db.execute(
                    "UPDATE snapshots SET version = ?, data = ? WHERE room = ? AND version = ?",
                    (version + 1, data, room, version),
                )
            else:
                cur2 = await self.db.execute(
                    "INSERT OR IGNORE INTO snapshots (room, version, data) VALUES (?, 1, ?)",
                    (room, data),
                )
            if cur2.rowcount != 1:
                await self.db.execute("ROLLBACK")
                return False
            await self.db.execute("DELETE FROM updates WHERE room = ? AND seq <= ?", (room, upto))
            await self.db.execute("COMMIT")
        except BaseException:
            await self.db.execute("ROLLBACK")
            raise
        await self._vacuum()
        return True

    async def _vacuum(self) -> None:
        """Return the pages a compaction or delete freed to the file system.

        Through ``executescript``: ``execute`` steps a statement that returns
        no columns once, and one step of ``incremental_vacuum`` frees one
        page, so the freelist (and the file) kept growing with every
        compaction that freed more than a page.
        """
        await self.db.executescript("PRAGMA incremental_vacuum;")

    async def _read(self, room: str) -> tuple[int, list[tuple[int, bytes]]]:
        """The snapshot version (0 = none), then the snapshot (as seq 0) and
        the log in order, read in one transaction so that a compaction by
        another process cannot fall between the two reads."""
        out: list[tuple[int, bytes]] = []
        async with self._lock:
            await self.db.execute("BEGIN")
            try:
                async with self.db.execute(
                    "SELECT version, data FROM snapshots WHERE room = ?", (room,)
                ) as cur:
                    row = await cur.fetchone()
                version = int(row[0]) if row else 0
                if row:
                    out.append((0, bytes(row[1])))
                async with self.db.execute(
                    "SELECT seq, data FROM updates WHERE room = ? ORDER BY seq", (room,)
                ) as cur:
                    async for seq, data in cur:
                        out.append((int(seq), bytes(data)))
            finally:
                await self.db.execute("COMMIT")
        return version, out

    async def delete(self, room: str) -> bool:
        try:
            async with self._lock:
                await self.db.execute("BEGIN IMMEDIATE")
                try:
                    a = await self.db.execute("DELETE FROM snapshots WHERE room = ?", (room,))
                    b = await self.db.execute("DELETE FROM updates WHERE room = ?", (room,))
                    await self.db.execute("COMMIT")
                except BaseException:
                    await self.db.execute("ROLLBACK")
                    raise
                await self._vacuum()
        except sqlite3.Error as exc:
            raise StoreError(f"delete {room!r}: {exc}") from exc
        return a.rowcount + b.rowcount > 0

    async def rooms(self) -> list[str]:
        try:
            async with self.db.execute(
                "SELECT room FROM snapshots UNION SELECT room FROM updates ORDER BY 1"
            ) as cur:
                return [str(row[0]) async for row in cur]
        except sqlite3.Error as exc:
            raise StoreError(f"list rooms: {exc}") from exc

    async def check(self) -> None:
        try:
            async with self.db.execute("SELECT 1") as cur:
                await cur.fetchone()
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite check failed: {exc}") from exc
