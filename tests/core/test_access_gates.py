"""Who may open a socket at all, and who may read the operational endpoints:
the Origin allow-list (HTTP 403 before the upgrade, both protocols, served and
mounted), the start-up warnings for guards left off, and COLLAB_METRICS_PORT."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.datastructures import Headers

from collab import create_app
from collab.client import YClient
from tests.observability.common import parse_metrics, value
from tests.support.jsclient import JSClient
from tests.support.ports import free_port
from tests.support.servers import run_app, run_collab
from tests.support.tokens import TEST_SECRET

from .helpers import settings

pytestmark = pytest.mark.anyio

ALLOWED = "https://app.example.com,https://*.preview.example.com"


async def handshake_status(url: str, origin: str | None) -> int:
    """101 when upgraded, else the HTTP status the server answered with."""
    headers = Headers({"Origin": origin}) if origin is not None else None
    try:
        async with websockets.connect(url, additional_headers=headers, open_timeout=5):
            return 101
    except websockets.InvalidStatus as exc:
        return exc.response.status_code


async def test_origin_allow_list_on_both_protocols(tmp_path: Path) -> None:
    env = {"COLLAB_STORE_URL": "memory://", "COLLAB_ALLOWED_ORIGINS": ALLOWED}
    async with run_collab(tmp_path, env=env) as srv, JSClient.start(tmp_path) as js:
        for path in ("/doc", "/hocuspocus", "/hocuspocus/doc"):
            url = srv.ws_url + path
            assert await handshake_status(url, "https://evil.example") == 403
            assert await handshake_status(url, "https://app.example.com.evil.net") == 403
            assert await handshake_status(url, "null") == 403
            assert await handshake_status(url, "https://app.example.com") == 101
            assert await handshake_status(url, "https://pr-7.preview.example.com") == 101
            assert await handshake_status(url, None) == 101  # not a browser
        # a real provider from an allowed origin syncs
        await js.call(
            "connect",
            handle="a",
            url=srv.ws_url,
            room="doc",
            headers={"Origin": "https://app.example.com"},
        )
        await js.call("insert", handle="a", index=0, text="from an allowed page")
        async with YClient(f"{srv.ws_url}/doc") as py:
            await py.wait_for(lambda c: "allowed page" in str(c.text()), 5)
        async with httpx.AsyncClient() as http:
            samples = parse_metrics((await http.get(f"{srv.url}/metrics")).text)
        refused = value(
            samples, "collab_handshakes_refused_total", endpoint="ywebsocket", reason="origin"
        )
        assert refused == 3
        assert (
            value(
                samples, "collab_handshakes_refused_total", endpoint="hocuspocus", reason="origin"
            )
            == 6
        )
        log = srv.log_text()
        assert "handshake refused: 403 Origin not allowed" in log
        assert "COLLAB_ALLOWED_ORIGINS is not set" not in log


async def test_require_origin_refuses_non_browsers(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_ALLOWED_ORIGINS": ALLOWED,
        "COLLAB_REQUIRE_ORIGIN": "true",
    }
    async with run_collab(tmp_path, env=env) as srv:
        assert await handshake_status(f"{srv.ws_url}/doc", None) == 403
        assert await handshake_status(f"{srv.ws_url}/doc", "https://app.example.com") == 101


async def test_origin_check_when_mounted() -> None:
    collab = create_app(settings(allowed_origins="https://app.example.com"))
    host = Starlette(routes=[Mount("/collab", app=collab)], lifespan=collab.router.lifespan_context)
    async with run_app(host) as app:
        url = f"{app.ws_url}/collab/doc"
        assert await handshake_status(url, "https://evil.example") == 403
        assert await handshake_status(url, "https://app.example.com") == 101


async def test_warnings_at_start_for_guards_left_off(tmp_path: Path) -> None:
    async with run_collab(tmp_path, env={"COLLAB_STORE_URL": "memory://"}, name="open") as srv:
        log = await srv.wait_for_log("anyone can read and write every room")
        assert "COLLAB_ALLOWED_ORIGINS is not set: no Origin check" in log
        assert log.count("anyone can read and write every room") == 1
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_ALLOWED_ORIGINS": ALLOWED,
        "COLLAB_JWT_SECRET": TEST_SECRET,
    }
    async with run_collab(tmp_path, env=env, name="guarded") as srv:
        log = await srv.wait_for_log(
            "origins allowed: https://app.example.com, https://*.preview.example.com"
        )
        assert "anyone can read" not in log and "is not set" not in log
        assert TEST_SECRET not in log


async def test_metrics_port_keeps_operational_endpoints_private(tmp_path: Path) -> None:
    ops = free_port()
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_METRICS_PORT": str(ops),
        "COLLAB_JWT_SECRET": TEST_SECRET,
    }
    async with run_collab(tmp_path, env=env) as srv, httpx.AsyncClient() as http:
        public, private = srv.url, f"http://127.0.0.1:{ops}"
        for spelling in ("/metrics", "/%6Detrics", "/%6d%65trics", "/metrics/", "//metrics"):
            response = await http.get(public + spelling, follow_redirects=True)
            assert response.status_code == 404, spelling
            assert "collab_" not in response.text
        ready = await http.get(f"{public}/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ok"}
        assert (await http.get(f"{public}/healthz")).status_code == 200

        detailed = (await http.get(f"{private}/readyz")).json()
        assert {"store", "event_loop"} <= detailed["components"].keys()
        assert detailed["instance"] and TEST_SECRET not in str(detailed)
        metrics = await http.get(f"{private}/metrics")
        assert metrics.status_code == 200 and "collab_active_connections" in metrics.text
        assert (await http.get(f"{private}/healthz")).json()["status"] == "ok"
        # no WebSocket on the operational port
        assert await handshake_status(f"ws://127.0.0.1:{ops}/doc", None) == 404
