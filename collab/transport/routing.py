"""Which sockets ``collab serve``'s own protocol serves, and what their session sees.

Functions over the app, the parsed request and the transport, with no state
of their own; :mod:`collab.transport.fast` (through
:class:`~collab.transport.shim.SessionShim`) calls them.

Routing is Starlette's own: the request path is matched against the app's
routes, and only a match whose endpoint is a
:class:`~collab.transport.endpoint.SocketEndpoint` is served on that path.
Anything else (an app with middleware, a path no socket lives on) is handed,
bytes and all, to the ASGI protocol (:mod:`collab.transport.uvicorn`), which
behaves as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.routing import Match, WebSocketRoute
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from ..wire import websocket as ws
from .connection import (
    ABORT_SCOPE_KEY,
    CONN_ID_SCOPE_KEY,
    DIRECT_SCOPE_KEY,
    PUMP_SCOPE_KEY,
    DirectWrite,
)
from .endpoint import SocketEndpoint

# What the session gives ``pump`` (PUMP_SCOPE_KEY): called with every data message.
Sink = Callable[[bytes | str], None]

PHRASES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
PHRASES |= {426: "Upgrade Required", 429: "Too Many Requests", 431: "Headers Too Large"}
PHRASES |= {500: "Internal Server Error", 503: "Service Unavailable"}


def status_phrase(status: int) -> str:
    """The reason phrase of an HTTP status a handshake is refused with."""
    return PHRASES.get(status, "Error")


def starlette_app(app: object) -> Starlette | None:
    """Our Starlette app when its sockets can be served here (no middleware,
    which this path would skip), else None: everything goes the ASGI way."""
    while not isinstance(app, Starlette) and hasattr(app, "app"):
        app = app.app  # uvicorn's own wrappers (its trace logger)
    if not isinstance(app, Starlette) or app.user_middleware:
        return None
    return app


def socket_route(app: object, path: str) -> tuple[SocketEndpoint, Mapping[str, Any]] | None:
    """Starlette's routing, as its router would do it: the first full match
    wins, and it is served here only if it is one of our socket endpoints."""
    starlette = starlette_app(app)
    if starlette is None:
        return None
    scope = {"type": "websocket", "path": path, "root_path": ""}
    for route in starlette.router.routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            endpoint = getattr(route, "endpoint", None)
            if isinstance(route, WebSocketRoute) and isinstance(endpoint, SocketEndpoint):
                if route.app is endpoint:
                    return endpoint, child
            return None
    return None


def websocket_scope(
    request: ws.Request,
    raw_path: str,
    query: str,
    child: Mapping[str, Any],
    transport: asyncio.Transport,
    *,
    conn_id: str,
    abort: Callable[[], None],
    direct: DirectWrite,
    pump: Callable[[Sink], Awaitable[dict[str, Any]]],
) -> dict[str, Any]:
    """The ASGI scope of a routed socket: the request's, the route's path
    parameters (``child``), and collab's own keys for the session."""
    scope: dict[str, Any] = {
        "type": "websocket",
        "scheme": "wss" if is_ssl(transport) else "ws",
        "server": get_local_addr(transport),
        "client": get_remote_addr(transport),
        "root_path": "",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("latin-1"),
        "query_string": query.encode("latin-1"),
        "headers": request.headers,
        "subprotocols": request.header_tokens(b"sec-websocket-protocol"),
        CONN_ID_SCOPE_KEY: conn_id,
        ABORT_SCOPE_KEY: abort,
        DIRECT_SCOPE_KEY: direct,
        PUMP_SCOPE_KEY: pump,
    }
    scope.update(child)
    return scope
