"""The SQLite file gives back what compaction and deletes free."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from pycrdt import Doc, Text

from collab.stores.sqlite import SQLiteStore

pytestmark = pytest.mark.anyio


def _pages(path: Path) -> tuple[int, int]:
    """(page_count, freelist_count) as another connection sees the file."""
    with sqlite3.connect(path) as db:
        pages = db.execute("PRAGMA page_count").fetchone()[0]
        free = db.execute("PRAGMA freelist_count").fetchone()[0]
    return int(pages), int(free)


def _edits(n: int, size: int) -> list[bytes]:
    """n updates that each insert ``size`` characters and delete them again."""
    doc: Doc = Doc()
    text = doc.get("t", type=Text)
    out: list[bytes] = []
    doc.observe(lambda event: out.append(event.update))
    for _ in range(n):
        text.insert(0, "x" * size)
        del text[0:size]
    return out


async def test_compaction_returns_every_freed_page(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite3"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        for update in _edits(40, 8000):  # 40 log rows of ~8 kB: dozens of pages
            await store.append("r", update)
        grown, _ = _pages(path)
        await store.compact("r")
        pages, free = _pages(path)
    finally:
        await store.close()
    assert grown > 60
    assert free == 0, f"{free} pages left on the freelist after compaction"
    assert pages < 15, f"{pages} pages after compacting to a near-empty document"


async def test_delete_returns_the_rooms_pages(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    store = SQLiteStore(str(path))
    await store.open()
    try:
        for update in _edits(20, 8000):
            await store.append("gone", update)
        assert await store.delete("gone")
        pages, free = _pages(path)
    finally:
        await store.close()
    assert free == 0
    assert pages < 15
