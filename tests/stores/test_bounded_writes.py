"""Store calls that hang or fail: bounded in time (TimedStore) and in memory
(the writer's buffer), with every edit stored once the store answers again."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.errors import StoreError
from collab.stores.memory import MemoryStore
from collab.stores.timeout import TimedStore
from collab.stores.writer import Writer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio


class SwitchableStore(MemoryStore):
    """A memory store that can hang (never answer) or fail on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.appended = 0

    async def append(self, room: str, update: bytes) -> int:
        if self.mode == "hang":
            await asyncio.Event().wait()
        if self.mode == "fail":
            raise StoreError("disk full")
        self.appended += len(update)
        return await super().append(room, update)


async def test_a_call_that_never_answers_fails_within_the_timeout() -> None:
    inner = SwitchableStore()
    inner.mode = "hang"
    store = TimedStore(inner, 0.2)
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"no answer within 0\.2s"):
        await store.append("r", b"x")
    assert time.monotonic() - started < 1.0
    assert store.abandoned == 1  # cancelled, not awaited
    await wait_until(lambda: store.abandoned == 0, 2, "the abandoned call ended")


async def test_the_buffer_is_bounded_during_an_outage_and_nothing_is_lost() -> None:
    inner = SwitchableStore()
    inner.mode = "hang"
    collapsed: list[int] = []
    writer = Writer(
        TimedStore(inner, 0.05),
        debounce=0.01,
        max_wait=0.02,
        compact_threshold=1000,
        buffer_bytes=20_000,
        on_collapse=lambda: collapsed.append(1),
    )
    doc: Doc[Any] = Doc()
    text = doc.get("text", type=Text)
    updates: list[bytes] = []
    sub = doc.observe(lambda e: updates.append(e.update))
    for i in range(400):  # 400 x 1 KB edits, 20 times the bound
        text += f"{i:04d}" + "x" * 1000
        writer.add("r", updates[-1], doc)
        if i % 50 == 0:
            await asyncio.sleep(0.02)
    doc.unobserve(sub)
    pending = writer._pending["r"]
    assert collapsed and pending.size < 20_000 + len(doc.get_update())
    assert writer.unsaved() == ["r"]
    inner.mode = "ok"
    await writer.flush("r")
    assert writer.unsaved() == []
    stored: Doc[Any] = Doc()
    stored.apply_update(await inner.load("r") or b"")
    assert str(stored.get("text", type=Text)) == str(text)
    await writer.close()


async def test_close_reports_what_could_not_be_stored() -> None:
    inner = SwitchableStore()
    inner.mode = "fail"
    writer = Writer(inner, debounce=10, max_wait=10, compact_threshold=1000)
    writer.add("a", b"\x01\x01\x01\x00\x04\x01\x04text\x01a\x00")
    started = time.monotonic()
    await writer.close()
    assert writer.unsaved() == ["a"] and time.monotonic() - started < 1.0
