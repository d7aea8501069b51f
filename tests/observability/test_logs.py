"""Logs: one JSON object per line on request, and the connection id on every
line about a connection (the API Gateway incident: a lost connection id)."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any

import pytest
import websockets

from collab.observability import logs
from tests.support.servers import run_collab

from .common import eventually, json_lines, scrape, value
from .rawws import RawWebSocket

pytestmark = pytest.mark.anyio

HOOKS = "tests.observability.hooks_fixture:hooks"

# Lines about the server as a whole, not about one socket.
_PROCESS_LINES = re.compile(
    r"^(Started server process|Waiting for application (startup|shutdown)|Application "
    r"(startup|shutdown) complete|Uvicorn running on|Shutting down|Finished server process|"
    r"Waiting for connections to close|draining: )"
)
_SOCKET_WORDS = re.compile(r"connection|socket|client|websocket|token|frame|close", re.IGNORECASE)


def about_a_connection(record: dict[str, Any]) -> bool:
    if _PROCESS_LINES.match(record["msg"]):
        return False
    return record["logger"].startswith(
        (
            "collab.session",
            "collab.connection",
            "collab.ywebsocket",
            "collab.hocuspocus",
            "collab.uvicorn",
        )
    ) or bool(_SOCKET_WORDS.search(record["msg"]))


async def _scripted_session(srv: Any) -> int:
    """Normal, rejected, denied, failing-hook, killed and bad-input sockets; returns how many."""
    url = f"{srv.ws_url}/doc"
    async with websockets.connect(f"{url}?token=good-token") as ws:
        await ws.recv()
    for path in ("/doc?token=bad", "/doc?token=boom", "/a//b"):
        async with websockets.connect(srv.ws_url + path) as ws:
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
    async with websockets.connect(url) as ws:
        await ws.recv()
        await ws.send(b"\x09")
        with pytest.raises(websockets.ConnectionClosed):
            while True:
                await asyncio.wait_for(ws.recv(), 5)
    killed = await asyncio.to_thread(RawWebSocket, srv.port, "/doc")
    await asyncio.to_thread(killed.read_data)
    await asyncio.to_thread(killed.kill)
    return 6


async def test_json_logs_carry_the_connection_id_on_every_connection_line(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_HOOKS": HOOKS,
        "COLLAB_LOG_FORMAT": "json",
        "COLLAB_LOG_LEVEL": "debug",
    }
    async with run_collab(tmp_path, env) as srv:
        sockets = await _scripted_session(srv)
        await eventually(
            lambda: scrape(srv.url), lambda s: value(s, "collab_connection_closes_total") == sockets
        )
        await srv.terminate()
        records = json_lines(srv.log_text())  # every line, start to exit, is JSON

    about = [r for r in records if about_a_connection(r)]
    missing = [r for r in about if not str(r.get("conn_id", "")).startswith("c-")]
    assert not missing, missing
    by_conn: dict[str, list[dict[str, Any]]] = {}
    for r in about:
        by_conn.setdefault(r["conn_id"], []).append(r)
    assert len(by_conn) == sockets
    for conn_id, lines in by_conn.items():
        msgs = [r["msg"] for r in lines]
        assert msgs.count("connection opened") == 1, (conn_id, msgs)
        assert msgs.count("connection closed") == 1, (conn_id, msgs)
    # A failing hook's traceback stays inside its one JSON line.
    failed = next(r for r in records if r["msg"] == "authenticate hook failed")
    assert "RuntimeError: the auth service is down" in failed["exc"]
    # The token never reaches the log (uvicorn's own line would print the query).
    assert "good-token" not in srv.log_text()
    assert {r["level"] for r in records} <= {"debug", "info", "warning", "error"}


async def test_text_logs_by_default(tmp_path: Path) -> None:
    async with run_collab(tmp_path, {"COLLAB_STORE_URL": "memory://"}) as srv:
        async with websockets.connect(f"{srv.ws_url}/doc") as ws:
            await ws.recv()
        log = await srv.wait_for_log("connection closed")
    line = next(ln for ln in log.splitlines() if "connection closed" in ln)
    assert re.search(
        r"INFO +collab\.session: connection closed \[conn_id=c-\S+ room=doc "
        r"code=1000 .*initiator=client duration=",
        line,
    ), line
    assert not log.lstrip().startswith("{")


def test_configure_is_idempotent_and_drops_uvicorn_socket_lines() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        logs.configure("json", "info")
        logs.configure("json", "info")
        ours = [h for h in root.handlers if getattr(h, "_collab", False)]
        assert len(ours) == 1
        handler = ours[0]
        accepted = logging.LogRecord(
            "uvicorn.error",
            logging.INFO,
            __file__,
            1,
            '%s - "WebSocket %s" [accepted]',
            ("127.0.0.1:1", "/doc?token=secret"),
            None,
        )
        assert not handler.filter(accepted)
        ours_line = logging.LogRecord(
            "collab.session", logging.INFO, __file__, 1, "connection opened", (), None
        )
        assert handler.filter(ours_line)
    finally:
        for h in list(root.handlers):
            if h not in before:
                root.removeHandler(h)
        root.setLevel(level)
        logging.captureWarnings(False)
