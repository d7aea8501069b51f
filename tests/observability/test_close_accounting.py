"""Every close path: the client reads an explicit code and reason, and the
server's close record (hook, metric, log line) says the same.

The Fargate incident was sockets dropped with 1005 and nothing saying why;
here no server close may lack a code or a reason.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets

from collab import Hooks, create_app
from collab.errors import StoreError
from collab.transport.connection import CloseRecord, Initiator
from collab.wire import ywebsocket as p
from tests.support.servers import RunningApp, run_app, run_collab
from tests.support.waiting import wait_until

from .common import FlakyStore, eventually, get_json, json_lines, scrape, settings, value
from .hooks_fixture import authenticate
from .rawws import RawWebSocket

pytestmark = pytest.mark.anyio

MAX_FRAME = 1024


async def close_of(
    url: str,
    frames: list[Any] = (),
    *,
    read_first: bool = True,  # type: ignore[assignment]
    timeout: float = 10,
) -> tuple[int, str]:
    """Connect, optionally read the first frame, send ``frames``, read until
    the server closes; return the code and reason from its close frame."""
    async with asyncio.timeout(timeout):
        async with websockets.connect(url, max_size=None, ping_interval=None) as ws:
            if read_first:
                await ws.recv()
            for frame in frames:
                await ws.send(frame)
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, "the server closed without a close frame"
                return closed.rcvd.code, closed.rcvd.reason


Case = Callable[[RunningApp, FlakyStore], Awaitable[tuple[int, str]]]


async def _bad_frame(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r", [b"\x00\x07\x00"])


async def _text_frame(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r", ["hello"])


async def _too_big(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r", [p.encode_update(b"\x00" * MAX_FRAME)])


async def _invalid_update(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r", [p.encode_update(b"not an update")])


async def _bad_room(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/a//b", read_first=False)


async def _unauthorized(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r?token=bad")


async def _forbidden(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r?token=forbidden")


async def _auth_hook_raises(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    return await close_of(f"{srv.ws_url}/r?token=boom")


async def _store_down_at_load(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    store.fail_load = StoreError("connection refused")
    return await close_of(f"{srv.ws_url}/fresh-room", read_first=False)


async def _internal_error(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    store.fail_load = RuntimeError("a bug")
    return await close_of(f"{srv.ws_url}/other-room", read_first=False)


async def _draining(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    srv.server.config.app.state.collab.begin_drain()
    return await close_of(f"{srv.ws_url}/r", read_first=False)


async def _shutdown(srv: RunningApp, store: FlakyStore) -> tuple[int, str]:
    """The lifespan's stop (and the drain's close_all): 1001 with a reason."""
    collab = srv.server.config.app.state.collab
    task = asyncio.ensure_future(close_of(f"{srv.ws_url}/r"))
    await wait_until(lambda: len(collab.connections) == 1)
    await wait_until(lambda: (room := collab.room("r")) is not None and room.peers)  # joined
    collab.close_all(1001, "server shutting down")
    return await task


CASES: dict[str, tuple[Case, int, str]] = {
    "bad frame": (_bad_frame, 1002, "unknown sync message type"),
    "text frame": (_text_frame, 1003, "text frames"),
    "too big": (_too_big, 1009, "exceeds"),
    "invalid update": (_invalid_update, 1007, "update rejected"),
    "bad room name": (_bad_room, 1008, "room name"),
    "unauthorized": (_unauthorized, 4401, "invalid token"),
    "forbidden": (_forbidden, 4403, "no access"),
    "auth hook raises": (_auth_hook_raises, 1011, "authentication failed"),
    "store down at load": (_store_down_at_load, 1013, "document store unavailable"),
    "internal error": (_internal_error, 1011, "internal error"),
    "draining": (_draining, 1013, "draining"),
    "shutdown": (_shutdown, 1001, "server shutting down"),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_server_close_has_code_and_reason(case: str) -> None:
    run, code, reason = CASES[case]
    records: list[CloseRecord] = []

    async def on_disconnect(record: CloseRecord) -> None:
        records.append(record)

    store = FlakyStore()
    app = create_app(
        settings(max_frame_bytes=MAX_FRAME),
        hooks=Hooks(authenticate=authenticate, on_disconnect=on_disconnect),
        store=store,
    )
    async with run_app(app, ws_ping_interval=None) as srv:
        got_code, got_reason = await run(srv, store)
        assert got_code == code and reason in got_reason, (got_code, got_reason)
        await wait_until(lambda: len(records) == 1)
        samples = await scrape(srv.url)
    record = records[0]
    assert (record.code, record.reason, record.initiator) == (code, got_reason, Initiator.SERVER)
    assert record.connection_id.startswith("c-")
    assert value(samples, "collab_connection_closes_total", code=str(code), initiator="server") == 1


async def test_client_closes_are_the_clients(caplog: pytest.LogCaptureFixture) -> None:
    records: list[CloseRecord] = []

    async def on_disconnect(record: CloseRecord) -> None:
        records.append(record)

    app = create_app(settings(), hooks=Hooks(on_disconnect=on_disconnect))
    async with run_app(app, ws_ping_interval=None) as srv:
        async with websockets.connect(f"{srv.ws_url}/r") as ws:
            await ws.recv()
            await ws.close(4000, "app says bye")
        gone = await asyncio.to_thread(RawWebSocket, srv.port, "/r")
        await asyncio.to_thread(gone.read_data)  # killed below, which closes it
        with caplog.at_level("INFO", logger="collab"):
            await asyncio.to_thread(gone.kill)
            await wait_until(lambda: len(records) == 2)
    assert (records[0].code, records[0].reason, records[0].initiator) == (
        4000,
        "app says bye",
        Initiator.CLIENT,
    )
    # Stock uvicorn (embedded) reports a vanished peer as 1005; either way it is
    # "abnormal", counted apart and logged as a warning.
    assert records[1].code in (1005, 1006) and records[1].initiator is Initiator.ABNORMAL
    line = next(
        r
        for r in caplog.records
        if r.getMessage() == "connection closed"
        and getattr(r, "conn_id", None) == records[1].connection_id
    )
    assert line.levelname == "WARNING"
    assert {"room", "duration", "last_frame"} <= vars(line).keys()


async def test_keepalive_closes_a_silent_peer(tmp_path: Path) -> None:
    """A peer that completes the handshake and then never answers a ping is
    closed by the server within ping_interval + ping_timeout, and the close
    is counted and logged as the server's, with the reason."""
    interval = timeout = 0.5
    env = {"COLLAB_STORE_URL": "memory://", "COLLAB_LOG_FORMAT": "json"}
    args = ["--ping-interval", str(interval), "--ping-timeout", str(timeout)]
    async with run_collab(tmp_path, env, args) as srv:
        async with websockets.connect(f"{srv.ws_url}/alive") as healthy:  # answers pings
            silent = await asyncio.to_thread(RawWebSocket, srv.port, "/silent")
            started = time.monotonic()
            try:
                got = await asyncio.to_thread(silent.read_until_closed)
            finally:
                silent.close()
            elapsed = time.monotonic() - started
            assert (got.close_code, got.close_reason) == (1011, "keepalive ping timeout")
            assert got.pings >= 1
            assert elapsed <= interval + timeout + 0.5, elapsed
            await asyncio.sleep(0)
            assert healthy.close_code is None  # a peer that answers stays
        samples = await eventually(
            lambda: scrape(srv.url),
            lambda s: value(s, "collab_connection_closes_total", code="1011") == 1,
        )
        assert (
            value(samples, "collab_connection_closes_total", code="1011", initiator="server") == 1
        )
        line = next(
            r
            for r in json_lines(srv.log_text())
            if r["msg"] == "connection closed" and r["room"] == "silent"
        )
        assert (line["code"], line["reason"], line["initiator"]) == (
            1011,
            "keepalive ping timeout",
            "server",
        )


async def test_sigterm_drains_with_1001(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_LOG_FORMAT": "json",
        "COLLAB_DRAIN_SECONDS": "1",
    }
    async with run_collab(tmp_path, env) as srv:
        async with websockets.connect(f"{srv.ws_url}/r", ping_interval=None) as ws:
            await ws.recv()
            srv.proc.send_signal(signal.SIGTERM)
            _, body = await eventually(lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 503)
            assert body["status"] == "draining"
            # New sockets are refused with a code while the old ones still work.
            assert await close_of(f"{srv.ws_url}/r", read_first=False) == (
                1013,
                "server is draining; reconnect to another instance",
            )
            with pytest.raises(websockets.ConnectionClosed):
                async with asyncio.timeout(10):
                    while True:
                        await ws.recv()
            assert ws.close_code == 1001 and ws.close_reason == "server shutting down"
        assert await asyncio.wait_for(srv.proc.wait(), 15) == 0
        closes = [r for r in json_lines(srv.log_text()) if r["msg"] == "connection closed"]
    assert sorted((r["code"], r["initiator"]) for r in closes) == [
        (1001, "server"),
        (1013, "server"),
    ]
