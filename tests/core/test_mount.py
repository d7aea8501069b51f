"""collab mounted under a prefix in someone else's Starlette or FastAPI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from collab import create_app
from collab.client import YClient
from tests.support.servers import run_app

from .helpers import converge, settings, text_of

pytestmark = pytest.mark.anyio


def starlette_host() -> tuple[Starlette, Any]:
    collab = create_app(settings())

    async def home(request: object) -> PlainTextResponse:
        return PlainTextResponse("host app")

    app = Starlette(
        routes=[Route("/", home), Mount("/collab", app=collab)],
        lifespan=collab.router.lifespan_context,
    )
    return app, collab


def fastapi_host() -> tuple[FastAPI, Any]:
    collab = create_app(settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with collab.router.lifespan_context(app):
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get("/")
    async def home() -> dict[str, str]:
        return {"app": "host"}

    app.mount("/collab", collab)
    return app, collab


@pytest.mark.parametrize("make", [starlette_host, fastapi_host], ids=["starlette", "fastapi"])
async def test_mounted_rooms_health_and_lifespan(make: Any) -> None:
    app, collab = make()
    server = collab.state.collab
    async with run_app(app, ws_ping_interval=None) as srv:
        assert server.started  # the host's lifespan started collab's background work
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/")).status_code == 200
            assert (await http.get("/collab/healthz")).json()["status"] == "ok"
            assert (await http.get("/collab/readyz")).status_code == 200
            assert "collab_connections_opened" in (await http.get("/collab/metrics")).text
        url = f"{srv.ws_url}/collab/team/doc"
        async with YClient(url) as a, YClient(url) as b:
            a.text().insert(0, "mounted;")
            b.text().insert(0, "too;")
            final = await converge([a, b])
        assert sorted(final.split(";")) == ["", "mounted", "too"]
        assert set(server.rooms) <= {"team/doc"}  # relative to the mount point
        assert await text_of(url) == final
    assert not server.started  # and its shutdown stopped it


async def test_unwired_lifespan_is_an_explicit_close_not_a_silent_drop() -> None:
    collab = create_app(settings())
    app = Starlette(routes=[Mount("/collab", app=collab)])  # lifespan forgotten
    async with run_app(app, ws_ping_interval=None) as srv:
        client = YClient(f"{srv.ws_url}/collab/doc", reconnect=False)
        await client.start()
        await client.wait_closed(5)
        assert client.close_code == 1011
        assert "lifespan" in client.close_reason
