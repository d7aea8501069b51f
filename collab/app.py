"""``create_app(settings) -> Starlette``: the one page that shows the object graph.

Every collaborator is given to the objects that use it when they are built;
nothing else wires anything. The path of one edit (docs/architecture.md):
socket → endpoint → session → wire decode → room → peers, and through the
room's observers → store writer, change hook, replicator → backplane.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute

from .backplane import Backplane, Replicator
from .config import Settings
from .hocuspocus import HocuspocusSession
from .hooks import HookRunner, Hooks, RoomEvent, load_hooks
from .observability.health import Health
from .observability.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .observability.metrics import Metrics
from .observability.monitors import Monitors
from .observability.redact import Redactor, secrets_of
from .observability.store_report import StoreReport
from .rooms.registry import RoomRegistry
from .rooms.room import RoomLimits, RoomObserver
from .server import CollabServer
from .stores import Store, store_from_url
from .stores.timeout import TimedStore
from .stores.writer import Writer
from .transport.endpoint import SocketEndpoint
from .transport.gates import Gate
from .transport.limits import ClientKey, ConnectionLimit, ConnectRate
from .ywebsocket import YWebsocketSession

log = logging.getLogger("collab.app")


def create_app(settings: Settings | None = None, *, hooks: Hooks | None = None,
               store: Store | None = None, backplane: Backplane | None = None) -> Starlette:
    """Build the ASGI app. Mount it anywhere; wire its lifespan (see README).

    ``app.state.collab`` is the :class:`CollabServer`; ``app.router.lifespan_context``
    starts and stops its background work. With ``COLLAB_REDIS_URL`` set (or a
    ``backplane`` given, e.g. a memory one in tests) rooms are shared with the
    other instances through it. A bad store URL, Redis URL or hooks spec
    raises :class:`~collab.errors.ConfigError` naming the variable.
    """
    s = settings or Settings.from_env(os.environ)
    metrics = Metrics()
    runner = HookRunner(hooks if hooks is not None else load_hooks(s.hooks),
                        timeout=s.hook_timeout, on_failure=metrics.hook_failed,
                        on_dropped=metrics.hook_changes_dropped.inc)
    if store is None:
        store = store_from_url(s.store_url, compact_threshold=s.compact_threshold,
                               statement_timeout=s.store_timeout)
    # Every store call, from the writer, the room loads and the checks, is bounded.
    store = TimedStore(store, s.store_timeout)
    health = Health(Redactor(secrets_of(s.redis.password, s.redis.url, s.store_url)))
    store_report = StoreReport(health, metrics, store.name)

    if backplane is None and s.redis.url:
        from .backplane.redis import redis_backplane_for

        backplane = redis_backplane_for(s.redis, health, metrics)
    replicator = None
    if backplane is not None:
        invalid = metrics.backplane_events.labels("invalid")
        replicator = Replicator(backplane, prefix=s.redis.prefix, instance_id=s.instance_id,
                                on_invalid=invalid.inc)

    async def stored(room: str, size: int) -> None:
        await runner.run(runner.hooks.on_store, RoomEvent(room, size))

    async def loaded(room: str, size: int) -> None:
        await runner.run(runner.hooks.on_load, RoomEvent(room, size))

    writer = Writer(store, debounce=s.flush_debounce, max_wait=s.flush_max_wait,
                    compact_threshold=s.compact_threshold, on_result=store_report.write,
                    on_stored=stored, buffer_bytes=s.store_buffer_bytes,
                    on_collapse=metrics.store_buffer_collapsed.inc)
    observers: list[RoomObserver] = [writer, runner]
    if replicator is not None:
        observers.append(replicator)
    rooms = RoomRegistry(store, grace=s.room_grace, fanout_window=s.fanout_window,
                         observers=observers, lifecycle=[replicator] if replicator else [],
                         flush=writer.flush, on_loaded=loaded,
                         limits=RoomLimits(s.max_document_bytes, s.max_awareness_state_bytes,
                                           s.max_awareness_clients))
    server = CollabServer(s, store=store, writer=writer, rooms=rooms, health=health,
                          store_report=store_report)
    monitors = Monitors(health=health, metrics=metrics, store=store, report=store_report,
                        room_count=lambda: len(rooms), loop_lag_interval=s.loop_lag_interval,
                        loop_lag_fail=s.loop_lag_fail,
                        store_check_interval=s.store_check_interval,
                        store_timeout=s.store_timeout)

    async def healthz(request: Request) -> Response:
        return JSONResponse(monitors.liveness())

    async def readyz(request: Request) -> Response:
        report = health.report()
        # Which process answered: with --workers N, tests and operators can tell them apart.
        report["instance"] = s.instance_id
        report["pid"] = os.getpid()
        return JSONResponse(report, status_code=200 if health.ready else 503)

    async def metrics_endpoint(request: Request) -> Response:
        metrics.active_rooms.set(len(rooms))
        metrics.oversized_rooms.set(rooms.oversized())
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        # Stopped in reverse order: the monitors, then sockets and rooms
        # (unloading a room publishes its last edits and unsubscribes it, so
        # the backplane is still up), then the backplane, then the hook calls
        # still running. The backplane never raises for an unreachable Redis:
        # that is logged with the cause, readiness fails, and it is retried.
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(runner.aclose)
            if replicator is not None:
                await replicator.start()
                stack.push_async_callback(replicator.stop)
            await server.start()
            stack.push_async_callback(server.stop)
            await monitors.start()
            stack.push_async_callback(monitors.stop)
            yield

    # Checked before the upgrade, in order (transport/gates.py).
    gates: list[Gate] = []
    if s.max_connections:
        gates.append(ConnectionLimit(s.max_connections, lambda: len(server.connections)))
    if s.connect_rate:
        gates.append(ConnectRate(s.connect_rate, s.connect_burst,
                                 ClientKey.parse(s.trusted_proxies)))

    def endpoint(session_cls: Any) -> SocketEndpoint:
        return SocketEndpoint(server, runner, metrics, session_cls, gates)

    routes = [
        Route(s.health_path, healthz),
        Route(s.ready_path, readyz),
        Route(s.metrics_path, metrics_endpoint),
        # Before the catch-all: the Hocuspocus path is not a room.
        WebSocketRoute(s.hocuspocus_path, endpoint(HocuspocusSession)),
        WebSocketRoute("/{room:path}", endpoint(YWebsocketSession)),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collab = server
    app.state.metrics = metrics
    app.state.replicator = replicator
    app.state.hooks = runner.hooks
    return app
