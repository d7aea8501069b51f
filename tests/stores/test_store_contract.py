"""The Store contract, run against every implementation (the suite is the contract).

"Two writers" means two store objects on one database — two SQLite
connections to one file, two PostgreSQL pools — appending and compacting the
same document at once, round after round; the stored document must always
contain every update (the CloudFront etag incident: concurrent writers without
a version lost updates). The memory store has no second connection to give,
so its two writers are two coroutines on one object.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.errors import StoreError
from collab.stores import Store, store_from_url
from collab.stores.memory import MemoryStore
from collab.stores.postgres import PostgresStore
from collab.stores.sqlite import SQLiteStore
from tests.support.postgres_server import PostgresServer

pytestmark = pytest.mark.anyio

StorePair = Callable[[], Awaitable[tuple[Store, Store]]]
_tokens = itertools.count()


@asynccontextmanager
async def _pairs(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorePair]:
    """A factory of two opened stores of ``kind`` on one database, closed afterwards."""
    opened: list[Store] = []
    url = ""
    if kind == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres")
        url = await asyncio.to_thread(pg.create_database, f"t_{uuid.uuid4().hex[:12]}")

    async def make() -> tuple[Store, Store]:
        pair: tuple[Store, Store]
        if kind == "memory":
            one = MemoryStore()
            pair = (one, one)
        elif kind == "sqlite":
            pair = (
                SQLiteStore(str(tmp_path / "db.sqlite3")),
                SQLiteStore(str(tmp_path / "db.sqlite3")),
            )
        else:
            pair = (PostgresStore(url), PostgresStore(url))
        for store in dict.fromkeys(pair):
            await store.open()
            opened.append(store)
        return pair

    try:
        yield make
    finally:
        for store in opened:
            await store.close()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
async def make_stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorePair]:
    async with _pairs(request.param, request, tmp_path) as make:
        yield make


@pytest.fixture(params=["sqlite", "postgres"])
async def make_db_stores(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorePair]:
    """As make_stores, for the stores with a database between two writers."""
    async with _pairs(request.param, request, tmp_path) as make:
        yield make


def make_update(token: str) -> bytes:
    """An update from a fresh client inserting ``token`` (unique client id)."""
    doc: Doc[Any] = Doc()
    doc.get("text", type=Text).insert(0, token)
    return doc.get_update()


def tokens_in(data: bytes | None) -> str:
    assert data is not None, "the document was never stored"
    doc: Doc[Any] = Doc()
    doc.apply_update(data)
    return str(doc.get("text", type=Text))


def new_tokens(n: int) -> list[str]:
    return [f"<{next(_tokens)}>" for _ in range(n)]


async def test_load_of_unknown_room_is_none(make_stores: StorePair) -> None:
    store, _ = await make_stores()
    assert await store.load("never-written") is None


async def test_append_then_load(make_stores: StorePair) -> None:
    store, other = await make_stores()
    [token] = new_tokens(1)
    assert await store.append("room", make_update(token)) == 1
    assert token in tokens_in(await store.load("room"))
    assert token in tokens_in(await other.load("room"))
    assert await other.load("another-room") is None


async def test_compaction_keeps_every_update(make_stores: StorePair) -> None:
    store, _ = await make_stores()
    first = new_tokens(10)
    for token in first:
        await store.append("room", make_update(token))
    await store.compact("room")
    text = tokens_in(await store.load("room"))
    assert all(t in text for t in first), text
    second = new_tokens(5)
    for token in second:
        await store.append("room", make_update(token))
    await store.compact("room")
    await store.compact("room")  # nothing left to fold: a no-op
    text = tokens_in(await store.load("room"))
    assert all(t in text for t in first + second), text


async def test_log_rows_bounded_after_compaction(make_stores: StorePair) -> None:
    store, _ = await make_stores()
    for i, token in enumerate(new_tokens(20), start=1):
        assert await store.append("room", make_update(token)) == i
    await store.compact("room")
    # The log is empty again: the next append makes it one row long.
    assert await store.append("room", make_update("<after>")) == 1


async def test_rooms_are_independent(make_stores: StorePair) -> None:
    store, _ = await make_stores()
    await store.append("a", make_update("<in-a>"))
    await store.append("b", make_update("<in-b>"))
    await store.compact("a")
    assert tokens_in(await store.load("a")) == "<in-a>"
    assert tokens_in(await store.load("b")) == "<in-b>"


async def test_delete_removes_snapshot_and_log(make_stores: StorePair) -> None:
    store, other = await make_stores()
    for token in new_tokens(3):
        await store.append("doomed", make_update(token))
    await store.compact("doomed")
    await store.append("doomed", make_update("<in-log>"))  # snapshot and a log row
    await store.append("kept", make_update("<kept>"))
    assert await store.rooms() == ["doomed", "kept"]
    assert await other.delete("doomed") is True
    assert await store.load("doomed") is None
    assert await store.rooms() == ["kept"]
    assert tokens_in(await store.load("kept")) == "<kept>"
    assert await store.delete("doomed") is False  # nothing left: not an error
    # A deleted room starts afresh: its log is one row long again.
    assert await store.append("doomed", make_update("<reborn>")) == 1
    assert tokens_in(await other.load("doomed")) == "<reborn>"


async def test_rooms_of_an_empty_store(make_stores: StorePair) -> None:
    store, _ = await make_stores()
    assert await store.rooms() == []


async def test_two_writers_append_and_compact_concurrently(make_stores: StorePair) -> None:
    one, two = await make_stores()
    written: list[str] = []

    async def writer(store: Store, tokens: list[str]) -> None:
        for token in tokens:
            await store.append("shared", make_update(token))
            written.append(token)
            if len(written) % 3 == 0:
                await store.compact("shared")
        await store.compact("shared")

    for _round in range(12):
        await asyncio.gather(
            writer(one, new_tokens(6)),
            writer(two, new_tokens(6)),
            one.compact("shared"),
            two.compact("shared"),
        )
        for store in (one, two):
            text = tokens_in(await store.load("shared"))
            missing = [t for t in written if t not in text]
            assert not missing, f"round {_round}: lost {missing}"
    # Bounded: after the final compactions the log holds at most a few rows.
    assert await one.append("shared", make_update("<last>")) <= 3


async def test_check(make_stores: StorePair) -> None:
    store, _ = await make_stores()
    await store.check()


async def test_postgres_bad_password_names_the_cause(postgres: PostgresServer) -> None:
    url = postgres.url.replace(f":{postgres.password}@", ":not-the-password@")
    store = store_from_url(url)
    assert isinstance(store, PostgresStore)
    with pytest.raises(StoreError) as err:
        await store.open()
    message = str(err.value)
    assert "password authentication failed" in message
    assert "not-the-password" not in message


async def test_postgres_unreachable_names_the_cause(postgres: PostgresServer) -> None:
    from tests.support.ports import free_port

    store = PostgresStore(f"postgresql://collab:secret@127.0.0.1:{free_port()}/collab")
    with pytest.raises(StoreError) as err:
        await store.open()
    assert "refused" in str(err.value).lower()
    assert "secret" not in str(err.value)


async def test_compaction_that_lost_the_race_retries(make_db_stores: StorePair) -> None:
    """The interleaving that loses data without compare-and-set, forced:
    A reads the log, B appends and compacts everything, then A writes."""
    a, b = await make_db_stores()
    assert isinstance(a, (SQLiteStore, PostgresStore))
    await a.append("race", make_update("<0>"))
    await a.compact("race")  # a snapshot exists: the race is on its version
    for token in ("<1>", "<2>"):
        await a.append("race", make_update(token))
    a_has_read = asyncio.Event()
    b_is_done = asyncio.Event()
    real_read = a._read
    reads = 0

    async def read_then_wait(room: str) -> Any:
        nonlocal reads
        reads += 1
        result = await real_read(room)
        if reads == 1:
            a_has_read.set()
            await asyncio.wait_for(b_is_done.wait(), 10)
        return result

    a._read = read_then_wait  # type: ignore[method-assign]
    compacting = asyncio.create_task(a.compact("race"))
    await asyncio.wait_for(a_has_read.wait(), 10)
    await b.append("race", make_update("<3>"))
    await b.compact("race")
    b_is_done.set()
    await asyncio.wait_for(compacting, 10)
    assert reads >= 2, "A's stale compare-and-set must have failed and been retried"
    for store in (a, b):
        text = tokens_in(await store.load("race"))
        assert all(t in text for t in ("<0>", "<1>", "<2>", "<3>")), text
