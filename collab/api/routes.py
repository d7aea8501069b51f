"""The HTTP API's endpoints (README "HTTP API"; the OpenAPI document in openapi.py).

Rooms are read and written through the room registry: a room not loaded here
is loaded for the call (:meth:`RoomRegistry.hold`) and unloaded after the
usual grace period. Updates the API applies carry the server's origin
(``PeerOrigin("server")``), so they reach local peers, the change hook (with
connection id "server"), the backplane and the store like a client's edit;
the store write is awaited before the answer, so a 200 means stored. A bad
request is refused before any document is touched.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from pycrdt import Doc
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from ..backplane.control import Control
from ..config import Settings
from ..errors import ApiError, CloseCode, InvalidPayload, StoreError
from ..observability.metrics import Metrics
from ..rooms.registry import RoomRegistry
from ..rooms.room import PeerOrigin, Room
from ..server import SERVER_ORIGIN_ID
from ..stores import Store
from ..stores.writer import Writer
from ..wire import backplane as rp
from . import http
from .auth import ApiAuth
from .edits import check_edit, edit_text
from .export import export, parse_types
from .openapi import openapi_document

log = logging.getLogger("collab.api")

SERVER_ORIGIN = PeerOrigin(SERVER_ORIGIN_ID)
EMPTY_STATE_VECTOR = b"\x00"
MAX_CONN_ID = 128
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[[Request], Awaitable[Response]]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class Api:
    """The API's handlers, given the registry, store, writer and control."""

    def __init__(
        self,
        settings: Settings,
        *,
        rooms: RoomRegistry,
        store: Store,
        writer: Writer,
        control: Control,
        auth: ApiAuth,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.rooms = rooms
        self.store = store
        self.writer = writer
        self.control = control
        self.auth = auth
        self.metrics = metrics
        self.limit = settings.max_frame_bytes
        self.client_id = Doc().client_id  # this process's writer id for text edits (edits.py)

    def routes(self) -> list[BaseRoute]:
        # Every method reaches the handlers, which answer a wrong one with a
        # JSON 405 (and count it), as every other refusal.
        def route(path: str, endpoint: Handler) -> Route:
            return Route(path, endpoint, methods=ALL_METHODS)

        return [
            Mount(
                self.settings.api_path,
                routes=[
                    route(
                        "/openapi.json", self._endpoint("/openapi.json", self.openapi, public=True)
                    ),
                    route("/rooms", self._endpoint("/rooms", self.list_rooms)),
                    route("/rooms/{rest:path}", self._rooms_endpoint),
                    route(
                        "/connections/{conn_id}/message",
                        self._endpoint("/connections/{id}/message", self.message_connection),
                    ),
                    route(
                        "/connections/{conn_id}",
                        self._endpoint("/connections/{id}", self.close_connection),
                    ),
                ],
            )
        ]

    # -- plumbing: auth, JSON errors, metrics ----------------------------------------

    def _endpoint(self, template: str, handler: Handler, *, public: bool = False) -> Handler:
        async def endpoint(request: Request) -> Response:
            return await self._run(request, template, handler, public)

        return endpoint

    async def _run(
        self, request: Request, template: str, handler: Handler, public: bool = False
    ) -> Response:
        try:
            if not public:
                self.auth.check(request.headers.get("authorization"))
            response = await handler(request)
        except ApiError as exc:
            response = http.error_response(exc)
        except StoreError as exc:
            log.error("API %s %s: %s", request.method, template, exc)
            response = http.error_response(
                ApiError(503, "store_unavailable", "document store unavailable")
            )
        self.metrics.api_requests.labels(request.method, template, str(response.status_code)).inc()
        return response

    async def _rooms_endpoint(self, request: Request) -> Response:
        template = "/rooms/{room}"
        try:
            self.auth.check(request.headers.get("authorization"))
            name, action = http.room_and_action(
                request, self.settings.max_room_name, self.settings.reserved_paths
            )
        except ApiError as exc:
            return await self._run(request, template, _raise(exc), public=True)
        template += f"/{action}" if action else ""
        handler = self._room_handlers.get((request.method, action))
        if handler is None:
            return await self._run(
                request,
                template,
                _raise(
                    ApiError(405, "method_not_allowed", f"{request.method} is not allowed here")
                ),
                public=True,
            )
        return await self._run(request, template, lambda r: handler(self, r, name), public=True)

    async def openapi(self, request: Request) -> Response:
        _method(request, "GET")
        return JSONResponse(openapi_document(self.settings.api_path))

    # -- rooms ---------------------------------------------------------------------

    async def list_rooms(self, request: Request) -> Response:
        _method(request, "GET")
        rooms: list[dict[str, Any]] = []
        for name in sorted(self.rooms):
            room = self.rooms.get(name)
            if room is not None:
                rooms.append(
                    {
                        "name": name,
                        "loaded": True,
                        "peers": len(room.peers),
                        "connections": sorted({p.connection_id for p in room.peers.values()}),
                        "size": len(room.diff()),
                    }
                )
        if request.query_params.get("all", "").lower() in ("1", "true", "yes"):
            loaded = {r["name"] for r in rooms}
            rooms += [
                {"name": n, "loaded": False} for n in await self.store.rooms() if n not in loaded
            ]
        return JSONResponse({"instance": self.settings.instance_id, "rooms": rooms})

    async def read(self, request: Request, name: str) -> Response:
        sv = http.state_vector(request)
        async with self.rooms.hold(name) as room:
            _exists(room)
            try:
                data = room.diff(sv)
            except InvalidPayload:
                raise ApiError(
                    400, "bad_request", "state_vector is not a Yjs state vector"
                ) from None
        return Response(data, media_type="application/octet-stream")

    async def read_json(self, request: Request, name: str) -> Response:
        fields = parse_types(request.query_params.get("types"))
        async with self.rooms.hold(name) as room:
            _exists(room)
            data = room.diff()
        try:
            return JSONResponse(export(data, fields))
        except RecursionError:
            raise ApiError(
                422,
                "too_deep",
                "the document is nested too deeply to export as "
                "JSON; read it as a Yjs update instead",
            ) from None

    async def write(self, request: Request, name: str) -> Response:
        update = await http.read_body(request, self.limit)
        if not update:
            raise ApiError(400, "bad_request", "the body must be a Yjs update")
        async with self.rooms.hold(name) as room:
            try:
                room.apply(update, SERVER_ORIGIN)
            except InvalidPayload as exc:
                raise ApiError(422, "invalid_update", exc.reason) from None
            await self.writer.flush(name)
            return JSONResponse({"room": name, "state_vector": _b64(room.state_vector())})

    async def write_text(self, request: Request, name: str) -> Response:
        field, mode, text, index, attributes = check_edit(await http.read_json(request, self.limit))
        async with self.rooms.hold(name) as room:
            update, now = edit_text(
                room.diff(), self.client_id, field, mode, text, index, attributes
            )
            room.apply(update, SERVER_ORIGIN)
            await self.writer.flush(name)
            return JSONResponse(
                {
                    "room": name,
                    "field": field,
                    "text": now,
                    "state_vector": _b64(room.state_vector()),
                }
            )

    async def message_room(self, request: Request, name: str) -> Response:
        payload = http.string_field(await http.read_json(request, self.limit), "payload")
        room = self.rooms.get(name)
        delivered = skipped = 0
        if room is not None:
            for peer in room.peers.values():
                if peer.codec.stateless(name, payload) is None:
                    skipped += 1  # y-websocket has no stateless message
                else:
                    delivered += 1
            room.broadcast_stateless(payload, SERVER_ORIGIN)  # here, and the backplane
        else:
            self.control.publish_stateless(name, payload)
        return JSONResponse(
            {
                "room": name,
                "instance": self.settings.instance_id,
                "delivered_here": delivered,
                "skipped_here": skipped,
                "relayed": self.control.backplane is not None,
            }
        )

    async def close_room_connections(self, request: Request, name: str) -> Response:
        code, reason = http.close_params(request, CloseCode.RESET, "reset by the server")
        closed = await self.control.close_room(name, code, reason)
        return JSONResponse(
            {"room": name, "closed_here": closed, "relayed": self.control.backplane is not None}
        )

    async def delete_room(self, request: Request, name: str) -> Response:
        code, reason = http.close_params(request, CloseCode.DELETED, "document deleted")
        closed = await self.control.close_room(name, code, reason, delete=True)
        deleted = await self.store.delete(name)
        log.info(
            "room deleted through the API (%d sockets closed here)", closed, extra={"room": name}
        )
        return JSONResponse({"room": name, "closed_here": closed, "deleted": deleted})

    _room_handlers: dict[tuple[str, str], Callable[[Api, Request, str], Awaitable[Response]]] = {
        ("GET", ""): read,
        ("DELETE", ""): delete_room,
        ("GET", "json"): read_json,
        ("POST", "update"): write,
        ("POST", "text"): write_text,
        ("POST", "message"): message_room,
        ("DELETE", "connections"): close_room_connections,
    }

    # -- connections, wherever they are --------------------------------------------

    async def message_connection(self, request: Request) -> Response:
        _method(request, "POST")
        conn_id = _conn_id(request)
        body = await http.read_json(request, self.limit)
        payload = http.string_field(body, "payload")
        room = http.string_field(body, "room", "")
        reached = await self.control.send(conn_id, payload, room)
        if reached is None:
            raise ApiError(404, "unknown_connection", "no instance holds this connection")
        if reached.status is rp.AckStatus.NO_STATELESS:
            raise ApiError(
                409,
                "no_stateless",
                "the connection speaks y-websocket, which has no stateless messages",
            )
        return JSONResponse(
            {"connection": conn_id, "instance": reached.instance, "delivered": reached.count}
        )

    async def close_connection(self, request: Request) -> Response:
        _method(request, "DELETE")
        conn_id = _conn_id(request)
        code, reason = http.close_params(request, CloseCode.RESET, "closed by the server")
        reached = await self.control.close(conn_id, code, reason)
        if reached is None:
            raise ApiError(404, "unknown_connection", "no instance holds this connection")
        return JSONResponse({"connection": conn_id, "instance": reached.instance, "code": code})


def _raise(exc: ApiError) -> Handler:
    async def handler(request: Request) -> Response:
        raise exc

    return handler


def _method(request: Request, allowed: str) -> None:
    if request.method != allowed:
        raise ApiError(405, "method_not_allowed", f"{request.method} is not allowed here")


def _exists(room: Room) -> None:
    """404 for a room nobody is in here and that holds nothing (never stored,
    or deleted): reading it would only ever give the empty document."""
    if not room.peers and room.state_vector() == EMPTY_STATE_VECTOR:
        raise ApiError(404, "unknown_room", "the room is empty and nobody is in it")


def _conn_id(request: Request) -> str:
    conn_id: str = request.path_params["conn_id"]
    if (
        not conn_id
        or len(conn_id) > MAX_CONN_ID
        or not all(c.isascii() and (c.isalnum() or c in "-_.") for c in conn_id)
    ):
        raise ApiError(400, "bad_request", "not a connection id")
    return conn_id
