"""Documents survive a restart; the SQLite file stays bounded; writes batch."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from collab.client import YClient
from collab.stores.sqlite import SQLiteStore
from tests.support.servers import run_collab

from .helpers import converge, serve, settings, text_of

pytestmark = pytest.mark.anyio


async def test_edits_survive_sigterm_and_restart(tmp_path: Path) -> None:
    db = tmp_path / "docs.sqlite3"
    env = {
        "COLLAB_STORE_URL": f"sqlite:///{db}",
        "COLLAB_DRAIN_SECONDS": "0.2",
        "COLLAB_FLUSH_DEBOUNCE": "5",
        "COLLAB_FLUSH_MAX_WAIT": "30",
    }
    async with run_collab(tmp_path, env=env) as srv:
        url = f"{srv.ws_url}/persist/me"
        async with YClient(url, reconnect=False) as a, YClient(url, reconnect=False) as b:
            for i in range(50):
                (a if i % 2 else b).text().insert(0, f"{i};")
            await converge([a, b])
            # Long debounce: nothing is written yet, the SIGTERM flush must do it.
            srv.proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(srv.proc.wait(), 15) == 0
            await a.wait_closed(5)
            assert a.close_code == 1001 and a.close_reason == "server shutting down"
    assert "draining" in srv.log_text()
    async with run_collab(tmp_path, env=env) as srv2:
        text = await text_of(f"{srv2.ws_url}/persist/me")
        assert sorted(text.split(";")) == sorted(["", *(str(i) for i in range(50))])


async def test_sqlite_file_stays_bounded_on_a_long_edited_document(tmp_path: Path) -> None:
    db = tmp_path / "bounded.sqlite3"
    s = settings(
        store_url=f"sqlite:///{db}", flush_debounce=0.0, flush_max_wait=0.0, compact_threshold=20
    )
    async with serve(s) as srv:
        url = f"{srv.ws_url}/long"
        async with YClient(url) as c:
            for i in range(1500):  # bounded: insert and delete 1 kB, 1,500 times
                c.text().insert(0, "y" * 1000)
                del c.text()[0:1000]
                if i % 50 == 0:
                    c.text().insert(len(c.text()), ".")
                await c.wait_for(lambda cc: True, 1)  # let the server keep up
            c.text().insert(len(c.text()), "end")
        # Roughly 1.5 MB of content went through the document.
        assert await text_of(url) == "." * 30 + "end"
    size = sum(f.stat().st_size for f in tmp_path.glob("bounded.sqlite3*"))
    assert size < 400_000, f"SQLite files total {size} bytes"
    store = SQLiteStore(str(db))
    await store.open()
    try:
        rows = await store.append("long", b"\x00\x00")
        assert rows <= 21  # the log was compacted
    finally:
        await store.close()


async def test_writes_are_batched(tmp_path: Path) -> None:
    db = tmp_path / "batched.sqlite3"
    s = settings(
        store_url=f"sqlite:///{db}",
        flush_debounce=0.3,
        flush_max_wait=1.0,
        compact_threshold=10_000,
    )
    async with serve(s) as srv:
        server = srv.server.config.app.state.collab
        async with YClient(f"{srv.ws_url}/batch") as c:
            for i in range(100):
                c.text().insert(0, str(i))
            await c.wait_for(lambda cc: True, 1)
        await server.writer.flush_all()
        rows = await server.store.append("batch", b"\x00\x00")
        assert rows < 10, f"{rows} rows for 100 edits: not batched"


def test_default_store_is_a_sqlite_file_in_the_working_directory() -> None:
    from collab import Settings

    assert Settings().store_url == "sqlite:///collab.sqlite3"
    assert SQLiteStore.from_url("sqlite:///collab.sqlite3").path == "collab.sqlite3"
    assert SQLiteStore.from_url("sqlite:////var/x.db").path == "/var/x.db"
    assert os.sep == "/"
