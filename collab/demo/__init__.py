"""The demo editor (``collab serve --demo``): a page at ``/demo/{room}``.

A CodeMirror 6 editor on the room's document, over y-websocket or Hocuspocus
(``?provider=hocuspocus``), with names and cursors from awareness, a status
line and a "what happened" panel that puts the close codes into words. Its
JavaScript is bundled at build time from ``demo/`` (npm packages pinned in
``demo/package-lock.json``, esbuild) into ``static/``, which is committed and
shipped in the Python package: nothing is fetched from a CDN at run time.

Routes, all plain HTTP ``Route`` s, so that a *WebSocket* on ``/demo/x`` is
still the room ``demo/x`` (a ``Mount`` would swallow it)::

    GET /demo                 -> redirect to /demo/welcome
    GET /demo/_/config.json   -> what the page needs to know about the server
    GET /demo/_/{asset}       -> demo.js, demo.css
    GET /demo/{room}          -> the page

``_`` is a valid room name character, so the room ``_`` and the rooms under
``_/`` cannot be opened *in the demo page* (they still work as rooms).
"""

from __future__ import annotations

import html
import json
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import Settings

__all__ = ["DEMO_PATH", "STATIC_DIR", "demo_routes"]

DEMO_PATH = "/demo"
STATIC_DIR = Path(__file__).resolve().parent / "static"
DEFAULT_ROOM = "welcome"
_ASSETS = {"demo.js": "text/javascript", "demo.css": "text/css"}
_BASE_MARKER = "__COLLAB_BASE__"
# The bundle is all there is: no CDN, no inline script. CodeMirror injects its
# styles at run time, hence 'unsafe-inline' for styles only. 'self' in
# connect-src covers ws(s):// to this host in current browsers.
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # Assets are small and change with every release: revalidate (ETag) each time.
    "Cache-Control": "no-cache",
}


def demo_routes(settings: Settings, *, auth: bool) -> list[BaseRoute]:
    """The demo's routes; add them before the catch-all room route.

    ``auth`` says whether the server checks credentials (an authenticate hook
    is configured): the page then shows a token field, sent as ``?token=``
    over y-websocket and as the Hocuspocus token.
    """
    page_template = (STATIC_DIR / "index.html").read_text(encoding="utf-8")

    def base_of(request: Request) -> str:
        # Mounted under a prefix, the page's URLs (assets, sockets) carry it.
        return str(request.scope.get("root_path", "")).rstrip("/")

    async def home(request: Request) -> Response:
        return RedirectResponse(f"{base_of(request)}{DEMO_PATH}/{DEFAULT_ROOM}", status_code=307)

    async def config(request: Request) -> Response:
        body = {
            "auth": auth,
            "root": base_of(request),
            "hocuspocus_path": settings.hocuspocus_path,
        }
        return Response(json.dumps(body), media_type="application/json", headers=_SECURITY_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:  # a fixed list: no path from the request reaches the disk
            return Response("not found", status_code=404, media_type="text/plain")
        return FileResponse(STATIC_DIR / name, media_type=_ASSETS[name], headers=_SECURITY_HEADERS)

    async def page(request: Request) -> Response:
        base = html.escape(base_of(request) + DEMO_PATH, quote=True)
        return Response(
            page_template.replace(_BASE_MARKER, base),
            media_type="text/html",
            headers=_SECURITY_HEADERS,
        )

    return [
        Route(DEMO_PATH, home, methods=["GET"]),
        Route(f"{DEMO_PATH}/", home, methods=["GET"]),
        Route(f"{DEMO_PATH}/_/config.json", config, methods=["GET"]),
        Route(f"{DEMO_PATH}/_/{{name}}", asset, methods=["GET"]),
        Route(f"{DEMO_PATH}/{{room:path}}", page, methods=["GET"]),
    ]
