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
from starlette.routing import BaseRoute, Route, WebSocketRoute

from .access.origins import OriginPolicy
from .access.tokens import TokenVerifier
from .api import Api, ApiAuth
from .backplane import Backplane, Replicator
from .backplane.control import Control
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
from .transport.gates import Gate, OriginGate, PortGate
from .transport.limits import ClientKey, ConnectionLimit, ConnectRate
from .ywebsocket import YWebsocketSession

log = logging.getLogger("collab.app")


def create_app(
    settings: Settings | None = None,
    *,
    hooks: Hooks | None = None,
    store: Store | None = None,
    backplane: Backplane | None = None,
) -> Starlette:
    """Build the ASGI app. Mount it anywhere; wire its lifespan (see README).

    ``app.state.collab`` is the :class:`CollabServer`; ``app.router.lifespan_context``
    starts and stops its background work. With ``COLLAB_REDIS_URL`` set (or a
    ``backplane`` given, e.g. a memory one in tests) rooms are shared with the
    other instances through it. A bad store URL, Redis URL or hooks spec
    raises :class:`~collab.errors.ConfigError` naming the variable.
    """
    s = settings or Settings.from_env(os.environ)
    metrics = Metrics()
    verifier = TokenVerifier.from_settings(s)
    runner = HookRunner(
        hooks if hooks is not None else load_hooks(s.hooks),
        verifier=verifier,
        timeout=s.hook_timeout,
        on_failure=metrics.hook_failed,
        on_dropped=metrics.hook_changes_dropped.inc,
    )
    if store is None:
        store = store_from_url(
            s.store_url, compact_threshold=s.compact_threshold, statement_timeout=s.store_timeout
        )
    # Every store call, from the writer, the room loads and the checks, is bounded.
    store = TimedStore(store, s.store_timeout)
    health = Health(
        Redactor(
            secrets_of(s.redis.password, s.redis.url, s.store_url, s.jwt_secret, *s.api_key_list)
        )
    )
    store_report = StoreReport(health, metrics, store.name)

    if backplane is None and s.redis.url and s.redis.cluster:
        from .backplane.redis_cluster import redis_cluster_backplane_for

        backplane = redis_cluster_backplane_for(s.redis, health, metrics)
    elif backplane is None and s.redis.url:
        from .backplane.redis import redis_backplane_for

        backplane = redis_backplane_for(s.redis, health, metrics)
    replicator = None
    if backplane is not None:
        invalid = metrics.backplane_events.labels("invalid")
        replicator = Replicator(
            backplane,
            prefix=s.redis.namespace,
            instance_id=s.instance_id,
            on_invalid=invalid.inc,
            hash_tag=s.redis.cluster,
        )

    async def stored(room: str, size: int) -> None:
        await runner.run(runner.hooks.on_store, RoomEvent(room, size))

    async def loaded(room: str, size: int) -> None:
        await runner.run(runner.hooks.on_load, RoomEvent(room, size))

    writer = Writer(
        store,
        debounce=s.flush_debounce,
        max_wait=s.flush_max_wait,
        compact_threshold=s.compact_threshold,
        on_result=store_report.write,
        on_stored=stored,
        buffer_bytes=s.store_buffer_bytes,
        on_collapse=metrics.store_buffer_collapsed.inc,
    )
    observers: list[RoomObserver] = [writer, runner]
    if replicator is not None:
        observers.append(replicator)
    rooms = RoomRegistry(
        store,
        grace=s.room_grace,
        fanout_window=s.fanout_window,
        fanout_frame_rate=s.fanout_frame_rate,
        observers=observers,
        lifecycle=[replicator] if replicator else [],
        flush=writer.flush,
        on_loaded=loaded,
        limits=RoomLimits(
            s.max_document_bytes, s.max_awareness_state_bytes, s.max_awareness_clients
        ),
    )
    server = CollabServer(
        s, store=store, writer=writer, rooms=rooms, health=health, store_report=store_report
    )
    api_auth = ApiAuth(s.api_key_list, verifier)
    control = None
    if api_auth.enabled:

        async def forget(room: str) -> None:
            # A deleted room: unloaded without storing, its unwritten updates dropped.
            await rooms.unload(room, force=True, discard=True)
            await writer.drop(room)

        control = Control(
            backplane,
            channel=f"{s.redis.namespace}:control",
            instance_id=s.instance_id,
            rooms=rooms,
            connections=server.connections,
            forget=forget,
            room_channel=(replicator.channel if replicator else str),
            on_invalid=metrics.backplane_events.labels("invalid").inc,
        )
    monitors = Monitors(
        health=health,
        metrics=metrics,
        store=store,
        report=store_report,
        room_count=lambda: len(rooms),
        loop_lag_interval=s.loop_lag_interval,
        loop_lag_fail=s.loop_lag_fail,
        store_check_interval=s.store_check_interval,
        store_timeout=s.store_timeout,
    )

    def operational(request: Request) -> bool:
        """With COLLAB_METRICS_PORT, metrics and the detailed readiness are
        served on that port only (the public one sits behind the ALB)."""
        server_addr = request.scope.get("server")
        return not s.metrics_port or (server_addr is not None and server_addr[1] == s.metrics_port)

    async def healthz(request: Request) -> Response:
        return JSONResponse(monitors.liveness())

    async def readyz(request: Request) -> Response:
        code = 200 if health.ready else 503
        if not operational(request):
            return JSONResponse({"status": health.report()["status"]}, status_code=code)
        report = health.report()
        # Which process answered: with --workers N, tests and operators can tell them apart.
        report["instance"] = s.instance_id
        report["pid"] = os.getpid()
        return JSONResponse(report, status_code=code)

    async def metrics_endpoint(request: Request) -> Response:
        if not operational(request):
            return Response("Not Found", status_code=404, media_type="text/plain")
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
        warn_if_open(s, runner, origins)
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(runner.aclose)
            if replicator is not None:
                await replicator.start()
                stack.push_async_callback(replicator.stop)
            if control is not None:
                await control.start()
                stack.push_async_callback(control.stop)
            await server.start()
            stack.push_async_callback(server.stop)
            await monitors.start()
            stack.push_async_callback(monitors.stop)
            yield

    # Checked before the upgrade, in order (transport/gates.py).
    origins = OriginPolicy.parse(s.allowed_origins)
    gates: list[Gate] = []
    if s.metrics_port:
        gates.append(PortGate(s.metrics_port))
    if s.connect_rate:
        gates.append(
            ConnectRate(s.connect_rate, s.connect_burst, ClientKey.parse(s.trusted_proxies))
        )
    if s.max_connections:
        gates.append(ConnectionLimit(s.max_connections, lambda: len(server.connections)))
    if origins.checking:
        gates.append(OriginGate(origins, require_origin=s.require_origin))

    def endpoint(session_cls: Any) -> SocketEndpoint:
        return SocketEndpoint(server, runner, metrics, session_cls, gates)

    hocuspocus = endpoint(HocuspocusSession)
    routes: list[BaseRoute] = [
        Route(s.health_path, healthz),
        Route(s.ready_path, readyz),
        Route(s.metrics_path, metrics_endpoint),
        # Before the catch-all: the Hocuspocus path is not a room. Like the
        # Hocuspocus server, any path under it (ws://host/hocuspocus/doc) is the
        # Hocuspocus endpoint: the document name travels in every frame.
        WebSocketRoute(s.hocuspocus_path, hocuspocus),
        WebSocketRoute(s.hocuspocus_path.rstrip("/") + "/{rest:path}", hocuspocus),
    ]
    if control is not None:
        api = Api(
            s,
            rooms=rooms,
            store=store,
            writer=writer,
            control=control,
            auth=api_auth,
            metrics=metrics,
        )
        routes += api.routes()
    if s.demo:
        from .demo import demo_routes

        # HTTP only: a WebSocket on /demo/x still reaches the room "demo/x".
        routes += demo_routes(s, auth=runner.checks_access)
    routes.append(WebSocketRoute("/{room:path}", endpoint(YWebsocketSession)))
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collab = server
    app.state.metrics = metrics
    app.state.replicator = replicator
    app.state.hooks = runner.hooks
    return app


def warn_if_open(settings: Settings, runner: HookRunner, origins: OriginPolicy) -> None:
    """One loud line at start for each guard left off (secure by default is
    the deployments' job; a laptop run must still be able to start)."""
    if not runner.checks_access:
        log.warning(
            "no authentication configured (COLLAB_JWT_SECRET, COLLAB_JWT_PUBLIC_KEY or "
            "an authenticate hook in COLLAB_HOOKS): anyone can read and write every room"
        )
    if origins.checking:
        log.info("origins allowed: %s", origins.describe())
    else:
        log.warning(
            "COLLAB_ALLOWED_ORIGINS is not set: no Origin check, any web page may connect "
            "here (cross-site hijacking); set it to your app's origins"
        )
