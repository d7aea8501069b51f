"""``create_app(settings) -> Starlette``: the only place that wires it all."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send

from .backplane import Backplane
from .config import Settings
from .connection import CONN_ID_SCOPE_KEY, DIRECT_SCOPE_KEY, Connection, new_connection_id
from .hocuspocus.session import HocuspocusSession
from .hooks import Hooks, load_hooks
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .monitors import Monitors
from .replication import Replicator
from .server import CollabServer
from .stores import Store, store_from_url
from .ywebsocket import YWebsocketSession

log = logging.getLogger("collab.app")


class _SocketEndpoint:
    """A raw ASGI websocket endpoint bound to the server (Starlette passes
    non-function endpoints through as ASGI apps)."""

    def __init__(self, server: CollabServer, session_cls: type[Any]) -> None:
        self.server = server
        self.session_cls = session_cls

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        s = self.server.settings
        # Under `collab serve` our uvicorn protocol has already given the id.
        conn_id = scope.get(CONN_ID_SCOPE_KEY) or new_connection_id()
        conn = Connection(conn_id, send, max_frames=s.outbound_queue_frames,
                          max_bytes=s.outbound_queue_bytes, path=scope.get("path", ""),
                          direct=scope.get(DIRECT_SCOPE_KEY))
        conn.on_overflow = self.server.metrics.queue_overflows.inc
        await self.session_cls(self.server, scope, receive, send, conn).serve()


def create_app(settings: Settings | None = None, *, hooks: Hooks | None = None,
               store: Store | None = None, backplane: Backplane | None = None) -> Starlette:
    """Build the ASGI app. Mount it anywhere; wire its lifespan (see README).

    ``app.state.collab`` is the :class:`CollabServer`; ``app.router.lifespan_context``
    starts and stops its background work. With ``COLLAB_REDIS_URL`` set (or a
    ``backplane`` given, e.g. a memory one in tests) rooms are shared with the
    other instances through it.
    """
    settings = settings or Settings.from_env(os.environ)
    if hooks is None:
        hooks = load_hooks(settings.hooks)
    if store is None:
        store = store_from_url(settings.store_url, compact_threshold=settings.compact_threshold)
    server = CollabServer(settings, store, hooks)
    monitors = Monitors(server)  # event-loop lag, periodic store check
    server.on_store_result.append(
        lambda room, seconds, exc: server.metrics.store_result(seconds, exc is not None))
    if backplane is None and settings.redis_url:
        from .backplane.redis import redis_backplane_for

        backplane = redis_backplane_for(settings, server.health, server.metrics)
    replicator = Replicator(server, backplane) if backplane is not None else None

    async def healthz(request: Request) -> Response:
        return JSONResponse(monitors.liveness())

    async def readyz(request: Request) -> Response:
        report = server.health.report()
        # Which process answered: with --workers N, tests and operators can tell them apart.
        report["instance"] = settings.instance_id
        report["pid"] = os.getpid()
        return JSONResponse(report, status_code=200 if server.health.ready else 503)

    async def metrics(request: Request) -> Response:
        server.metrics.active_rooms.set(len(server.rooms))
        return Response(server.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await server.start()
        await monitors.start()
        try:
            if replicator is not None:
                # Never raises for an unreachable or misconfigured Redis: it is
                # logged with the cause, readiness fails, and it is retried.
                await replicator.backplane.start()
                await replicator.start()
            yield
        finally:
            await monitors.stop()
            try:
                await server.stop()  # unloading rooms unsubscribes them: backplane still up
            finally:
                if replicator is not None:
                    await replicator.stop()
                    await replicator.backplane.stop()

    hocuspocus = _SocketEndpoint(server, HocuspocusSession)
    routes: list[BaseRoute] = [
        Route(settings.health_path, healthz),
        Route(settings.ready_path, readyz),
        Route(settings.metrics_path, metrics),
        # Before the catch-all: the Hocuspocus path is not a room. Like the
        # Hocuspocus server, any path under it (ws://host/hocuspocus/doc) is the
        # Hocuspocus endpoint: the document name travels in every frame.
        WebSocketRoute(settings.hocuspocus_path, hocuspocus),
        WebSocketRoute(settings.hocuspocus_path.rstrip("/") + "/{rest:path}", hocuspocus),
    ]
    if settings.demo:
        from .demo import demo_routes

        # HTTP only: a WebSocket on /demo/x still reaches the room "demo/x".
        routes += demo_routes(settings, auth=hooks.authenticate is not None)
    routes.append(WebSocketRoute("/{room:path}", _SocketEndpoint(server, YWebsocketSession)))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collab = server
    return app
