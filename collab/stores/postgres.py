"""PostgreSQL store (``postgresql://user:pass@host:5432/db``), shared by instances.

psycopg 3 (async) with a psycopg_pool connection pool. Same model as the
SQLite store: a snapshot per room with a version, plus an append-only log.

- Appends are plain INSERTs: any number of instances append at once without
  conflict.
- Loads read the snapshot and the log in one REPEATABLE READ transaction, so
  a compaction committed between the two reads cannot hide updates.
- Compaction reads the same way, squashes outside any transaction, then in
  one transaction compare-and-sets the snapshot version and deletes exactly
  the log rows it folded. Not "``seq <= max``": sequence values are handed out
  at INSERT but become visible at COMMIT, so a row with a smaller seq may
  commit after our read, and deleting by range would lose it. A writer that
  lost the race (the version moved) re-reads and retries, a bounded number of
  times (the CloudFront etag incident: writers without a version lost data).
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import psycopg
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from ..errors import StoreError, VersionConflict
from ..observability.redact import redact
from .base import squash

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collab_snapshots (
    room TEXT PRIMARY KEY,
    version BIGINT NOT NULL,
    data BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS collab_updates (
    seq BIGSERIAL PRIMARY KEY,
    room TEXT NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS collab_updates_room_seq ON collab_updates (room, seq);
"""
# Serialises schema creation between instances starting at the same moment
# (concurrent CREATE TABLE IF NOT EXISTS can still collide in pg_type).
_SCHEMA_LOCK = 0x636F6C6C6162  # "collab"

MAX_ATTEMPTS = 20
CONNECT_TIMEOUT = 10


class PostgresStore:
    name = "postgresql"

    def __init__(
        self, url: str, *, min_size: int = 1, max_size: int = 10, statement_timeout: float = 0
    ) -> None:
        """``statement_timeout`` (s, 0 = none): the server ends a statement
        running longer (a lock held forever, a slow disk) and frees its
        connection; the caller's own deadline is COLLAB_STORE_TIMEOUT."""
        self.url = url
        self._options = (
            f"-c statement_timeout={int(statement_timeout * 1000)}" if statement_timeout > 0 else ""
        )
        self._min_size = min_size
        self._max_size = max_size
        self._pool: AsyncConnectionPool[Any] | None = None

    def __repr__(self) -> str:
        return f"<PostgresStore {redact(self.url)}>"

    @property
    def pool(self) -> AsyncConnectionPool[Any]:
        if self._pool is None:
            raise StoreError("PostgreSQL store is not open")
        return self._pool

    def _error(self, what: str, exc: BaseException) -> StoreError:
        return StoreError(redact(f"{what}: {type(exc).__name__}: {exc}".strip()))

    async def open(self) -> None:
        where = redact(self.url)
        try:
            # One direct connection first: the pool would only say "timed out",
            # this says "password authentication failed" or "connection refused".
            conn = await psycopg.AsyncConnection.connect(
                self.url, connect_timeout=CONNECT_TIMEOUT, autocommit=True
            )
            async with conn:
                async with conn.transaction():
                    await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
                    await conn.execute(_SCHEMA)
            pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
                self.url,
                min_size=self._min_size,
                max_size=self._max_size,
                open=False,
                kwargs={
                    "autocommit": True,
                    "connect_timeout": CONNECT_TIMEOUT,
                    **({"options": self._options} if self._options else {}),
                },
                name="collab-store",
            )
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            raise self._error(f"cannot open PostgreSQL store {where}", exc) from exc
        self._pool = pool

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def load(self, room: str) -> bytes | None:
        try:
            _, parts = await self._read(room)
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._error(f"load {room!r}", exc) from exc
        return squash([data for _, data in parts]) if parts else None

    async def append(self, room: str, update: bytes) -> int:
        try:
            async with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                # The CTE's SELECT does not see its own INSERT: hence the + 1.
                cur = await conn.execute(
                    "WITH ins AS (INSERT INTO collab_updates (room, data) VALUES (%s, %s)) "
                    "SELECT count(*) + 1 FROM collab_updates WHERE room = %s",
                    (room, update, room),
                )
                row = await cur.fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._error(f"append {room!r}", exc) from exc
        return int(row[0]) if row else 0

    async def compact(self, room: str) -> None:
        for attempt in range(MAX_ATTEMPTS):
            try:
                await self._compact_once(room)
                return
            except VersionConflict:
                # Another instance compacted first: re-read. Jitter so two
                # compactors do not collide again in lockstep.
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))
            except (psycopg.Error, PoolTimeout) as exc:
                raise self._error(f"compact {room!r}", exc) from exc
        raise VersionConflict(f"compact {room!r}: still conflicting after {MAX_ATTEMPTS} attempts")

    async def _compact_once(self, room: str) -> None:
        version, parts = await self._read(room)
        seqs = [seq for seq, _ in parts if seq > 0]
        if not seqs:
            return  # nothing to fold
        data = squash([d for _, d in parts])  # the slow part: outside any transaction
        async with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
            async with conn.transaction():
                if version:
                    cur = await conn.execute(
                        "UPDATE collab_snapshots SET version = version + 1, data = %s "
                        "WHERE room = %s AND version = %s",
                        (data, room, version),
                    )
                else:
                    cur = await conn.execute(
                        "INSERT INTO collab_snapshots (room, version, data) VALUES (%s, 1, %s) "
                        "ON CONFLICT (room) DO NOTHING",
                        (room, data),
                    )
                if cur.rowcount != 1:
                    # Leaving the block with an exception rolls back: nothing deleted.
                    raise VersionConflict(
                        f"compact {room!r}: snapshot version {version} changed meanwhile"
                    )
                await conn.execute(
                    "DELETE FROM collab_updates WHERE room = %s AND seq = ANY(%s)", (room, seqs)
                )

    async def _read(self, room: str) -> tuple[int, list[tuple[int, bytes]]]:
        """Snapshot version (0 = none) and [(0, snapshot), (seq, update), ...],
        read in one REPEATABLE READ transaction (one consistent view)."""
        out: list[tuple[int, bytes]] = []
        async with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
            async with conn.transaction():
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                cur = await conn.execute(
                    "SELECT version, data FROM collab_snapshots WHERE room = %s", (room,)
                )
                row = await cur.fetchone()
                version = int(row[0]) if row else 0
                if row:
                    out.append((0, bytes(row[1])))
                cur = await conn.execute(
                    "SELECT seq, data FROM collab_updates WHERE room = %s ORDER BY seq", (room,)
                )
                for seq, data in await cur.fetchall():
                    out.append((int(seq), bytes(data)))
        return version, out

    async def delete(self, room: str) -> bool:
        try:
            async with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                async with conn.transaction():
                    a = await conn.execute("DELETE FROM collab_snapshots WHERE room = %s", (room,))
                    b = await conn.execute("DELETE FROM collab_updates WHERE room = %s", (room,))
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._error(f"delete {room!r}", exc) from exc
        return int(a.rowcount) + int(b.rowcount) > 0

    async def rooms(self) -> list[str]:
        try:
            async with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                cur = await conn.execute(
                    "SELECT room FROM collab_snapshots UNION "
                    "SELECT room FROM collab_updates ORDER BY 1"
                )
                return [str(row[0]) for row in await cur.fetchall()]
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._error("list rooms", exc) from exc

    async def check(self) -> None:
        try:
            async with self.pool.connection(timeout=CONNECT_TIMEOUT) as conn:
                await conn.execute("SELECT 1")
        except (psycopg.Error, PoolTimeout) as exc:
            raise self._error("PostgreSQL check failed", exc) from exc
