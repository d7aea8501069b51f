"""COLLAB_STORE_TIMEOUT against a real PostgreSQL frozen with SIGSTOP: rooms
keep serving and never wedge, /readyz says 503 with the cause, and once the
database answers again every edit is stored; SIGTERM during the outage ends
in bounded time, names the rooms whose edits are lost and exits non-zero."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import websockets
from pycrdt import Doc, Text

from collab.client import YClient
from tests.limits.helpers import close_of, pair, still_converging
from tests.observability.common import eventually
from tests.support.postgres_server import PostgresServer
from tests.support.servers import CollabProcess, run_collab

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


def env_for(url: str) -> dict[str, str]:
    return {
        "COLLAB_STORE_URL": url,
        "COLLAB_STORE_TIMEOUT": "1",
        "COLLAB_STORE_CHECK_INTERVAL": "0.5",
        "COLLAB_FLUSH_DEBOUNCE": "0.05",
        "COLLAB_FLUSH_MAX_WAIT": "0.2",
        "COLLAB_ROOM_GRACE": "0.3",
        "COLLAB_DRAIN_SECONDS": "1",
    }


def stored_text(url: str, room: str) -> str:
    """The room's document as PostgreSQL holds it (snapshot + log)."""
    doc: Doc[Any] = Doc()
    with psycopg.connect(url, connect_timeout=5) as conn:
        for table in ("collab_snapshots", "collab_updates"):
            for (data,) in conn.execute(f"SELECT data FROM {table} WHERE room = %s", (room,)):
                doc.apply_update(bytes(data))
    return str(doc.get("text", type=Text))


async def readiness(srv: CollabProcess) -> tuple[int, dict[str, Any]]:
    async with httpx.AsyncClient(timeout=5) as http:
        r = await http.get(f"{srv.url}/readyz")
        return r.status_code, r.json()


async def test_a_frozen_postgresql_fails_readiness_and_loses_no_edit(
    tmp_path: Path, pg: PostgresServer
) -> None:
    url = pg.create_database("frozen")
    async with run_collab(tmp_path, env=env_for(url)) as srv:
        async with pair(f"{srv.ws_url}/pg/r") as (a, b):
            await still_converging(a, b, "before")
            async with YClient(f"{srv.ws_url}/pg/gone", reconnect=False) as c:
                c.text().insert(0, "<gone:before>")
            pg.pause()
            try:
                for i in range(5):  # mid-edit: the room keeps serving
                    await still_converging(a, b, f"frozen{i}")
                async with YClient(f"{srv.ws_url}/pg/gone", reconnect=False) as c:
                    c.text().insert(0, "<gone:frozen>")
                _, body = await eventually(lambda: readiness(srv), lambda r: r[0] == 503)
                assert "no answer within 1s" in body["components"]["store"]["error"], body
                # The unloaded room's edits are not stored yet: a rejoin is refused
                # in bounded time (1013), not left hanging on the frozen database.
                started = time.monotonic()
                async with websockets.connect(f"{srv.ws_url}/pg/gone") as ws:
                    assert await close_of(ws) == (1013, "document store unavailable")
                assert time.monotonic() - started < 5
            finally:
                pg.resume()
            await eventually(lambda: readiness(srv), lambda r: r[0] == 200, timeout=20)
            await still_converging(a, b, "after")
            expected = str(a.text())
        for tag in ("before", "frozen0", "frozen4", "after"):
            assert f"<a:{tag}>" in expected
        await eventually(
            lambda: _async(stored_text, url, "pg/r"), lambda t: t == expected, timeout=20
        )
        await eventually(
            lambda: _async(stored_text, url, "pg/gone"),
            lambda t: "<gone:before>" in t and "<gone:frozen>" in t,
            timeout=20,
        )
        async with YClient(f"{srv.ws_url}/pg/gone", reconnect=False) as c:
            assert "<gone:frozen>" in str(c.text())


async def test_sigterm_during_a_store_outage_exits_non_zero_naming_the_rooms(
    tmp_path: Path, pg: PostgresServer
) -> None:
    url = pg.create_database("outage")
    async with run_collab(tmp_path, env=env_for(url)) as srv:
        async with pair(f"{srv.ws_url}/pg/lost") as (a, b):
            await still_converging(a, b, "stored")
            await eventually(
                lambda: _async(stored_text, url, "pg/lost"), lambda t: "<a:stored>" in t
            )
            pg.pause()
            try:
                await still_converging(a, b, "unstored")
                started = time.monotonic()
                code = await srv.terminate(timeout=30)
                took = time.monotonic() - started
            finally:
                pg.resume()
        assert code != 0
        # drain (1 s) + sockets closing + one store timeout per phase, not a hang
        assert took < 15, took
        log = srv.log_text()
        assert "could not be stored and are lost: 'pg/lost'" in log, log[-3000:]


async def _async(fn: Any, *args: Any) -> Any:
    return await asyncio.to_thread(fn, *args)
