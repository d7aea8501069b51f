"""The demo's HTTP routes (collab/demo), the ``demo`` setting and its flag.

In process under real uvicorn: what the page is served with, what
``/demo/_/config.json`` says, that ``demo`` is reserved but ``demo/x`` is
still a room for WebSockets, that a mounted app's page carries the prefix,
and that ``--demo`` / ``--no-demo`` / ``COLLAB_DEMO`` reach the settings.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import websockets
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.exceptions import ConnectionClosed

from collab import AuthRequest, AuthResult, Hooks, Settings, create_app
from collab.cli import settings_from
from collab.demo import STATIC_DIR
from collab.errors import ConfigError
from tests.support.servers import run_app

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]


def _settings(**kw: object) -> Settings:
    return Settings(store_url="memory://", **kw)  # type: ignore[arg-type]


async def _deny(request: AuthRequest) -> AuthResult:
    return AuthResult.deny("no", code=4401)


async def _first_frame_or_close(url: str) -> bytes | tuple[int, str]:
    async with websockets.connect(url) as ws:
        try:
            frame = await ws.recv()
        except ConnectionClosed as exc:
            assert exc.rcvd is not None
            return exc.rcvd.code, exc.rcvd.reason
    assert isinstance(frame, bytes)
    return frame


async def test_off_by_default() -> None:
    assert Settings().demo is False
    async with run_app(create_app(_settings()), ws_ping_interval=None) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/demo/notes")).status_code == 404
            assert (await http.get("/demo/_/demo.js")).status_code == 404
        # Without the demo, "demo" is an ordinary room: sync step 1 first.
        assert await _first_frame_or_close(f"{srv.ws_url}/demo") == b"\x00\x00\x01\x00"


async def test_page_assets_and_config() -> None:
    async with run_app(create_app(_settings(demo=True)), ws_ping_interval=None) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            home = await http.get("/demo")
            assert home.status_code == 307 and home.headers["location"] == "/demo/welcome"
            page = await http.get("/demo/team/notes")
            assert page.status_code == 200
            assert page.headers["content-type"].startswith("text/html")
            assert 'data-base="/demo"' in page.text
            assert '<script defer src="/demo/_/demo.js">' in page.text
            assert "script-src 'self'" in page.headers["content-security-policy"]
            assert "__COLLAB_BASE__" not in page.text
            js = await http.get("/demo/_/demo.js")
            assert js.status_code == 200 and js.headers["content-type"].startswith(
                "text/javascript"
            )
            assert js.content == (STATIC_DIR / "demo.js").read_bytes()
            css = await http.get("/demo/_/demo.css")
            assert css.headers["content-type"].startswith("text/css")
            # Only the listed assets: nothing else from the package directory.
            for name in ("index.html", "__init__.py"):
                assert (await http.get(f"/demo/_/{name}")).status_code == 404, name
            # A path that climbs out is just a (bad) room name for the page.
            climb = await http.get("/demo/_/..%2F__init__.py")
            assert b"demo_routes" not in climb.content
            config = (await http.get("/demo/_/config.json")).json()
            assert config == {"auth": False, "root": "", "hocuspocus_path": "/hocuspocus"}
        # "demo" is reserved now; "demo/x" is still a room (the routes are HTTP only).
        assert await _first_frame_or_close(f"{srv.ws_url}/demo") == (
            1008,
            "'demo' is a reserved path, not a room",
        )
        assert await _first_frame_or_close(f"{srv.ws_url}/demo/x") == b"\x00\x00\x01\x00"


async def test_config_says_auth_with_an_authenticate_hook() -> None:
    app = create_app(_settings(demo=True), hooks=Hooks(authenticate=_deny))
    async with run_app(app, ws_ping_interval=None) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            assert (await http.get("/demo/_/config.json")).json()["auth"] is True


async def test_mounted_page_carries_the_prefix() -> None:
    collab = create_app(_settings(demo=True))
    host = Starlette(routes=[Mount("/collab", app=collab)], lifespan=collab.router.lifespan_context)
    async with run_app(host, ws_ping_interval=None) as srv:
        async with httpx.AsyncClient(base_url=srv.url) as http:
            page = await http.get("/collab/demo/notes")
            assert 'data-base="/collab/demo"' in page.text
            assert (await http.get("/collab/demo/_/demo.js")).status_code == 200
            config = (await http.get("/collab/demo/_/config.json")).json()
            assert config["root"] == "/collab"
            home = await http.get("/collab/demo")
            assert home.headers["location"] == "/collab/demo/welcome"


def test_flag_and_environment() -> None:
    assert settings_from(["serve"], {}).demo is False
    assert settings_from(["serve", "--demo"], {}).demo is True
    assert settings_from(["serve"], {"COLLAB_DEMO": "1"}).demo is True
    assert settings_from(["serve", "--no-demo"], {"COLLAB_DEMO": "true"}).demo is False
    with pytest.raises(ConfigError, match="COLLAB_DEMO"):
        settings_from(["serve"], {"COLLAB_DEMO": "maybe"})
    assert "demo" in _settings(demo=True).reserved_paths
    assert "demo" not in _settings().reserved_paths


def test_static_files_ship_in_the_package() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    assert '"collab.demo" = ["static/*"]' in pyproject
    assert sorted(p.name for p in STATIC_DIR.iterdir()) == ["demo.css", "demo.js", "index.html"]
