"""SIGTERM drain, as ECS and Docker trigger it (DESIGN.md: every close has an
explicit code and reason; nothing acknowledged is lost on shutdown).

With COLLAB_DRAIN_SECONDS=1: readiness turns 503 at once, a new socket is
refused (1013), the open ones get 1001 with a reason, the process exits 0,
and the edit made before the signal is in the SQLite file afterwards."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .serverproc import STEP1, YClient, collab_serve, free_port, hermetic_environ

pytestmark = pytest.mark.anyio

GOING_AWAY = 1001
TRY_AGAIN_LATER = 1013


def _env(tmp_path: Path) -> dict[str, str]:
    return hermetic_environ(
        COLLAB_STORE_URL=f"sqlite:///{tmp_path / 'drain.sqlite3'}",
        COLLAB_DRAIN_SECONDS="1",
        COLLAB_LOG_FORMAT="json",
    )


async def _refused(url: str) -> tuple[int | None, str]:
    """Open a socket during the drain: it must be turned away explicitly,
    with no sync step 1 (that would mean it joined a room)."""
    try:
        client = await YClient.connect(url)
    except InvalidStatus as exc:
        return exc.response.status_code, "HTTP"
    with anyio.fail_after(10):
        try:
            data = await client.ws.recv()
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (None, "")
    pytest.fail(f"a socket opened during the drain got a frame: {data!r}")


async def test_sigterm_drains_and_keeps_the_edit(tmp_path: Path) -> None:
    room = "drain/room"
    port = free_port()
    server = collab_serve(port, _env(tmp_path), tmp_path, tmp_path / "first.log").start()
    try:
        await server.wait_status("/readyz", 200)
        a = await YClient.connect(f"{server.ws_base}/{room}")
        b = await YClient.connect(f"{server.ws_base}/{room}")
        await a.handshake()
        await b.handshake()
        await a.insert("kept across restarts")
        await b.wait_text("kept across restarts")

        server.terminate()
        ready = await server.wait_status("/readyz", 503, timeout=5)
        assert ready.json()["status"] == "draining"
        code, reason = await _refused(f"{server.ws_base}/{room}")
        assert code == TRY_AGAIN_LATER, (code, reason, server.output())
        assert reason

        with anyio.fail_after(15):
            closes = [await a.wait_closed(), await b.wait_closed()]
        for code, reason in closes:
            assert code == GOING_AWAY, (closes, server.output())
            assert reason, "a close without a reason explains nothing"
        assert await server.wait_exit() == 0, server.output()
    finally:
        server.kill()

    # Same SQLite file, new process: a fresh client gets the edit in step 2.
    again = collab_serve(free_port(), _env(tmp_path), tmp_path, tmp_path / "second.log").start()
    try:
        await again.wait_status("/readyz", 200)
        c = await YClient.connect(f"{again.ws_base}/{room}")
        await c.handshake()
        assert c.received[0].subtype == STEP1
        assert str(c.text) == "kept across restarts", again.output()
        await c.close()
        again.terminate()
        assert await again.wait_exit() == 0, again.output()
    finally:
        again.kill()
