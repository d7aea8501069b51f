"""/healthz and /readyz: liveness with event-loop lag, readiness per component."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from fastapi import FastAPI
from pycrdt import Doc, Map, Text
from starlette.applications import Starlette
from starlette.routing import Mount

from collab import create_app
from collab.client import YClient
from collab.errors import StoreError
from collab.observability.health import Health
from collab.observability.monitors import LoopLagMonitor
from collab.observability.redact import Redactor, redact, secrets_of
from collab.wire import ywebsocket as p
from tests.support.servers import run_app, run_collab
from tests.support.waiting import wait_until

from .common import FlakyStore, eventually, get_json, scrape, settings, value

pytestmark = pytest.mark.anyio


# -- the component table -------------------------------------------------------


def test_errors_are_redacted() -> None:
    secrets = secrets_of("hunter22", "rediss://app:s3cr%21t@redis:6379/0", "x")
    assert secrets == {"hunter22", "s3cr%21t", "s3cr!t"}
    text = (
        "AUTH failed for rediss://app:s3cr!t@redis:6379/0 password=hunter22 "
        "token: abc123 and the literal hunter22 and s3cr!t"
    )
    out = redact(text, secrets)
    for secret in ("hunter22", "s3cr!t", "abc123"):
        assert secret not in out
    assert "rediss://app:***@redis:6379/0" in out and "AUTH failed" in out


def test_component_keeps_since_and_last_error() -> None:
    h = Health(Redactor({"pa55word"}))
    h.register("store")
    assert not h.ready and h.report()["components"]["store"]["error"] == "no result yet"
    h.set_ok("store", backend="sqlite")
    since_ok = h.components["store"].since
    h.set_ok("store")
    assert h.components["store"].since == since_ok  # unchanged while it stays ok
    h.set_failing("store", "connection refused, pa55word")
    h.set_failing("store", "still refused")
    entry = h.report()["components"]["store"]
    assert entry["status"] == "failing" and entry["error"] == "still refused"
    assert entry["since"] >= round(since_ok, 3) and entry["backend"] == "sqlite"
    h.set_ok("store")
    entry = h.report()["components"]["store"]
    assert entry["status"] == "ok" and "error" not in entry
    assert entry["last_error"] == "still refused" and entry["last_error_at"] >= entry["since"] - 1
    h.draining = True
    assert h.report()["status"] == "draining" and not h.ready


def test_pending_is_not_ready_and_not_an_error() -> None:
    h = Health()
    h.set_pending("redis", "connecting")
    entry = h.report()["components"]["redis"]
    assert not h.ready and entry["status"] == "failing" and entry["error"] == "connecting"
    h.set_ok("redis")
    assert h.ready and "last_error" not in h.report()["components"]["redis"]


# -- endpoints -------------------------------------------------------------------


async def test_readyz_lists_components_and_fails_while_draining() -> None:
    app = create_app(settings())
    async with run_app(app, ws_ping_interval=None) as srv:
        status, body = await get_json(srv.url + "/readyz")
        assert status == 200 and body["status"] == "ok"
        assert set(body["components"]) >= {"store", "event_loop"}
        store = body["components"]["store"]
        assert store["status"] == "ok" and store["backend"] == "memory" and "since" in store
        assert "lag_seconds" in body["components"]["event_loop"]
        status, live = await get_json(srv.url + "/healthz")
        assert status == 200 and live["status"] == "ok"
        assert {"event_loop_lag_seconds", "event_loop", "uptime_seconds"} <= live.keys()
        app.state.collab.begin_drain()
        status, body = await get_json(srv.url + "/readyz")
        assert status == 503 and body["status"] == "draining"
        status, _ = await get_json(srv.url + "/healthz")
        assert status == 200  # draining is not dead: the orchestrator must not kill it


@contextlib.asynccontextmanager
async def blocking_the_loop(block: float) -> AsyncIterator[None]:
    """Keep this event loop busy: ``block`` s of blocking work, over and over."""
    stop = asyncio.Event()

    async def hog() -> None:
        while not stop.is_set():
            time.sleep(block)  # deliberately blocking: this is the fault injected
            await asyncio.sleep(0.01)

    task = asyncio.ensure_future(hog())
    try:
        yield
    finally:
        stop.set()
        await task


async def test_event_loop_lag_fails_readiness_and_recovers() -> None:
    app = create_app(settings(loop_lag_interval=0.05, loop_lag_fail=0.15))
    async with run_app(app, ws_ping_interval=None) as srv:
        async with blocking_the_loop(0.3):
            _status, body = await eventually(
                lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 503
            )
            loop = body["components"]["event_loop"]
            assert loop["status"] == "failing" and "exceeds 0.15s" in loop["error"]
            _, live = await get_json(srv.url + "/healthz")
            assert live["status"] == "ok" and live["event_loop_lag_seconds"] > 0.15
            samples = await scrape(srv.url)
            assert value(samples, "collab_event_loop_lag_seconds") > 0.15
        _, body = await eventually(lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 200)
        assert "exceeds" in body["components"]["event_loop"]["last_error"]


async def test_a_dead_lag_monitor_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(self: LoopLagMonitor, lag: float) -> None:
        raise RuntimeError("monitor bug")

    monkeypatch.setattr(LoopLagMonitor, "record", broken)
    app = create_app(settings())
    async with run_app(app, ws_ping_interval=None) as srv:
        _, body = await eventually(lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 503)
    assert body["components"]["event_loop"]["error"] == (
        "lag monitor stopped: RuntimeError: monitor bug"
    )


async def test_healthz_answers_within_a_bound_under_load(tmp_path: Path) -> None:
    """Many editors fanning updates out through one room; /healthz keeps
    answering fast (it reads memory only) and reports the lag."""
    clients, edits, cap = 8, 300, 3000
    async with run_collab(tmp_path, {"COLLAB_STORE_URL": "memory://"}) as srv:
        url = f"{srv.ws_url}/busy"
        sockets = [await websockets.connect(url, max_size=None) for _ in range(clients)]
        docs: list[Any] = [Doc() for _ in range(clients)]
        latencies: list[float] = []

        async def drain(ws: Any, doc: Any) -> None:
            """Apply what the server fans out until this editor has every edit.
            Each editor ends with a marker saying how many edits it sent, so the
            reader knows the total once every marker has arrived (the room
            merges bursts, so frames are fewer than edits)."""
            text, done = doc.get("text", type=Text), doc.get("done", type=Map)
            async for frame in ws:
                msg = p.decode_message(frame)
                if isinstance(msg, (p.SyncStep2, p.SyncUpdate)):
                    doc.apply_update(msg.update)
                    if len(done) == clients and str(text).count(";") == sum(done.values()):
                        return

        async def edit(ws: Any, n: int) -> None:
            """Edit until both `edits` are sent and the prober has had ten
            answers under load (a fast server would otherwise finish before
            the prober got going); `cap` bounds the loop."""
            doc = docs[n]
            text, done = doc.get("text", type=Text), doc.get("done", type=Map)

            async def send(change: Callable[[], object]) -> None:
                before = doc.get_state()
                change()
                await ws.send(p.encode_update(doc.get_update(before)))

            sent = 0
            while sent < edits or (len(latencies) < 10 and sent < cap):
                await send(lambda i=sent: text.insert(0, f"{n}:{i};"))
                sent += 1
                await asyncio.sleep(0)  # let the prober run: its latency is what we measure
            await send(lambda: done.__setitem__(str(n), sent))

        stop = asyncio.Event()

        async def probe() -> None:
            async with httpx.AsyncClient(timeout=5) as client:
                while not stop.is_set():
                    started = time.monotonic()
                    response = await client.get(srv.url + "/healthz")
                    latencies.append(time.monotonic() - started)
                    assert response.status_code == 200
                    assert "event_loop_lag_seconds" in response.json()
                    await asyncio.sleep(0.02)

        prober = asyncio.ensure_future(probe())
        async with asyncio.timeout(60):
            readers = [
                asyncio.ensure_future(drain(ws, doc)) for ws, doc in zip(sockets, docs, strict=True)
            ]
            await asyncio.gather(*(edit(ws, i) for i, ws in enumerate(sockets)))
            await asyncio.gather(*readers)  # the server has fanned everything out
        stop.set()
        await prober
        for ws in sockets:
            await ws.close()
        assert len(latencies) >= 5
        assert max(latencies) < 1.0, sorted(latencies)[-5:]


async def test_store_check_failure_shows_without_writes() -> None:
    store = FlakyStore()
    app = create_app(settings(store_check_interval=0.05), store=store)
    async with run_app(app, ws_ping_interval=None) as srv:
        await wait_until(lambda: store.checks >= 1)
        store.fail_check = StoreError(
            "could not connect to postgresql://collab:hunter22@db/collab (password=hunter22)"
        )
        _status, body = await eventually(
            lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 503
        )
        entry = body["components"]["store"]
        assert entry["status"] == "failing" and "could not connect" in entry["error"]
        assert "hunter22" not in str(body)
        store.fail_check = None  # the database is back: no restart needed
        _, body = await eventually(lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 200)
        assert "could not connect" in body["components"]["store"]["last_error"]
        samples = await scrape(srv.url)
    assert value(samples, "collab_store_errors_total", op="check") >= 1
    assert value(samples, "collab_store_seconds_count", op="check", result="error") >= 1


async def test_a_passing_check_does_not_hide_failing_writes() -> None:
    store = FlakyStore()
    store.fail_append = StoreError("disk full")
    app = create_app(settings(store_check_interval=0.05), store=store)
    async with run_app(app, ws_ping_interval=None) as srv:
        async with YClient(f"{srv.ws_url}/doc") as client:
            client.text().insert(0, "hello")
            await eventually(lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 503)
            checks = store.checks
            await wait_until(lambda: store.checks >= checks + 3)
            status, body = await get_json(srv.url + "/readyz")
            assert status == 503 and "disk full" in body["components"]["store"]["error"]
            store.fail_append = None  # the writer retries; the write lands
            await eventually(lambda: get_json(srv.url + "/readyz"), lambda r: r[0] == 200)
        samples = await scrape(srv.url)
    assert value(samples, "collab_store_errors_total", op="write") >= 1


# -- mounted as a sub-app, with custom paths ------------------------------------------


def _parent(kind: str, sub: Any) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with sub.router.lifespan_context(sub):  # the README's wiring
            yield

    if kind == "fastapi":
        parent = FastAPI(lifespan=lifespan)
        parent.mount("/collab", sub)
        return parent
    return Starlette(routes=[Mount("/collab", app=sub)], lifespan=lifespan)


@pytest.mark.parametrize("kind", ["starlette", "fastapi"])
async def test_paths_are_configurable_and_work_mounted(kind: str) -> None:
    sub = create_app(
        settings(health_path="/ops/live", ready_path="/ops/ready", metrics_path="/ops/metrics")
    )
    async with run_app(_parent(kind, sub), ws_ping_interval=None) as srv:
        base = srv.url + "/collab"
        status, live = await get_json(base + "/ops/live")
        assert status == 200 and live["status"] == "ok"
        status, ready = await get_json(base + "/ops/ready")
        assert status == 200 and ready["components"]["store"]["status"] == "ok"
        async with YClient(f"{srv.ws_url}/collab/notes") as client:
            client.text().insert(0, "x")
            samples = await scrape(base, "/ops/metrics")
            assert value(samples, "collab_active_connections") == 1
        async with httpx.AsyncClient() as http:
            assert (await http.get(base + "/healthz")).status_code == 404  # moved
        # The health paths are never rooms.
        async with websockets.connect(f"{srv.ws_url}/collab/ops/live") as ws:
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1008 and "reserved" in (ws.close_reason or "")
