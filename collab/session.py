"""Drives one accepted socket, whatever its wire protocol.

Subclasses (y-websocket, Hocuspocus) implement ``run`` and ``handle_frame``;
this base does the parts that must be identical on every path: the ASGI
handshake, the token, the authenticate hook, close accounting, one log line
per close, metrics, and the disconnect hook. Frames of one socket are handled
strictly in order, in the socket's own task.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.types import Receive, Scope, Send

from .connection import TRANSPORT_CLOSE, Connection, Initiator, State
from .errors import CloseCode, CloseError, Overloaded, StoreError
from .hooks import AuthRequest, AuthResult, ConnectEvent
from .room import Peer, Room

if TYPE_CHECKING:
    from .server import CollabServer

log = logging.getLogger("collab.session")

# How long we wait for the client to answer our close frame.
CLOSE_TIMEOUT = 5.0
# uvicorn's code for the sockets it closes at its own shutdown.
_ASGI_SHUTDOWN = 1012


class Session:
    room_obj: Room | None

    def __init__(self, server: CollabServer, scope: Scope, receive: Receive, send: Send,
                 conn: Connection) -> None:
        self.server = server
        self.settings = server.settings
        self.scope = scope
        self._receive = receive
        self._send = send
        self.conn = conn
        self.room_name = ""
        self.room_obj = None
        self.context: dict[str, Any] = {}
        self._client_code: int | None = None
        self._client_reason = ""
        self._accepted = False
        self.query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        self.metrics = server.metrics
        # Frames are tallied as plain ints (Metrics.flush feeds Prometheus).
        self._tally_in = self.metrics.tally("in", self.endpoint)
        self._tally_out = self.metrics.tally("out", self.endpoint)
        conn.on_frame_sent = self._count_frame_out

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        """Request headers, lower-cased; decoded on first use only (the
        authenticate hook), not kept for every idle socket."""
        return {k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in self.scope.get("headers", [])}

    @property
    def extra(self) -> dict[str, str]:
        return {"conn_id": self.conn.id, "room": self.room_name or "-"}

    # -- to implement -------------------------------------------------------

    async def run(self) -> None:
        raise NotImplementedError

    def handle_frame(self, frame: bytes) -> None:
        raise NotImplementedError

    def on_leave(self) -> None:
        """Leave every room joined (called once, when the socket is gone)."""

    # -- driver -------------------------------------------------------------

    async def serve(self) -> None:
        self.server.connections[self.conn.id] = self.conn
        self.metrics.connection_opened(self.endpoint)
        try:
            await self.run()
        except Exception:
            log.exception("session failed", extra=self.extra)
            if not self._accepted:
                # Unaccepted, the client would see a bare HTTP 500, not a close code.
                try:
                    await asyncio.wait_for(self.accept(), CLOSE_TIMEOUT)
                except Exception as exc:
                    log.warning("cannot accept to report the failure: %r", exc, extra=self.extra)
            self.conn.close(CloseCode.INTERNAL, "internal error")
            await self._await_disconnect()
        finally:
            await self._finish()

    endpoint = "ywebsocket"

    def check_open(self) -> None:
        if not self.server.started:
            raise CloseError("collab server not started: is its lifespan wired?",
                             CloseCode.INTERNAL)
        if self.server.draining:
            raise Overloaded("server is draining; reconnect to another instance")

    def token(self) -> str:
        """The token from ``?token=`` or from the Sec-WebSocket-Protocol header."""
        if "token" in self.query:
            return str(self.query["token"])
        offered = self._subprotocols()
        return offered[-1] if offered else ""

    def _subprotocols(self) -> list[str]:
        return list(self.scope.get("subprotocols") or [])

    async def accept(self) -> None:
        if self._accepted:
            return
        message = await self._receive()
        if message["type"] != "websocket.connect":
            raise RuntimeError(f"expected websocket.connect, got {message['type']!r}")
        offered = self._subprotocols()
        # Browsers require the server to pick one of the offered protocols.
        await self._send({"type": "websocket.accept",
                          "subprotocol": offered[0] if offered else None})
        self._accepted = True
        client = self.scope.get("client")
        extra: dict[str, Any] = {**self.extra, "endpoint": self.endpoint,
                                 "client": f"{client[0]}:{client[1]}" if client else "-"}
        forwarded = _header(self.scope, b"x-forwarded-for")
        if forwarded is not None:
            extra["forwarded_for"] = forwarded
        # The path without the query: a token may ride in ?token=.
        log.info("connection opened", extra={**extra, "path": self.scope.get("path", "")})

    async def authenticate(self, room: str, token: str | None = None) -> AuthResult:
        hook = self.server.hooks.authenticate
        if hook is None:
            return AuthResult.allow()
        request = AuthRequest(self.conn.id, room, self.token() if token is None else token,
                              self.headers, self.query)
        try:
            result = await hook(request)
        except Exception:
            log.exception("authenticate hook failed", extra=self.extra)
            return AuthResult(False, code=CloseCode.INTERNAL, reason="authentication failed")
        if not result.allowed:
            log.info("authentication denied: %s", result.reason, extra=self.extra)
            self.metrics.auth_denied(self.endpoint)
        self.context.update(result.context)
        return result

    async def join_room(self, name: str, peer: Peer, result: AuthResult) -> Room | None:
        try:
            room = await self.server.join(name, peer)
        except StoreError as exc:
            log.error("cannot load room: %s", exc, extra=self.extra)
            await self.reject(CloseCode.TRY_AGAIN_LATER, "document store unavailable")
            return None
        self.room_obj = room
        hook = self.server.hooks.on_connect
        if hook is not None:
            await self.server._call_hook(
                hook, ConnectEvent(self.conn.id, name, result.readonly, dict(result.context)))
        return room

    async def reject(self, code: int, reason: str, *, flush: bool = False) -> None:
        log.info("rejecting connection: %s %s", int(code), reason, extra=self.extra)
        self.conn.close(code, reason, flush=flush)
        await self._await_disconnect()

    async def _await_disconnect(self) -> None:
        try:
            await asyncio.wait_for(self._until_disconnect(), CLOSE_TIMEOUT)
        except TimeoutError:
            log.warning("client did not answer the close frame", extra=self.extra)

    async def _until_disconnect(self) -> None:
        while self._client_code is None:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._disconnected(message)

    def _disconnected(self, message: Any) -> None:
        """Note how the socket ended. Closes made by the ASGI server itself
        (keepalive timeout, its shutdown's 1012) are server closes, not the
        client's: counting them as the client's hides why sockets drop."""
        code = message.get("code", CloseCode.NO_STATUS)
        reason = message.get("reason") or ""
        self._client_code, self._client_reason = code, reason
        if message.get(TRANSPORT_CLOSE):
            self.conn.closed_by_transport(code, reason)
        elif code == _ASGI_SHUTDOWN:
            self.conn.closed_by_transport(code, reason or "ASGI server shutting down")

    async def receive_loop(self) -> None:
        conn = self.conn
        limit = self.settings.max_frame_bytes
        receive = self._receive
        while True:
            if conn.state is not State.OPEN:
                await self._await_disconnect()
                return
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self._disconnected(message)
                return
            data = message.get("bytes")
            if data is None:
                self.metrics.frame_rejected(self.endpoint, "text_frame")
                self._close_for(CloseError("text frames are not part of the protocol",
                                           CloseCode.UNSUPPORTED_DATA))
                continue
            conn.stats.frames_in += 1
            conn.stats.bytes_in += len(data)
            if len(data) > limit:
                self.metrics.frame_rejected(self.endpoint, "too_big")
                self._close_for(CloseError(f"frame of {len(data)} bytes exceeds {limit}",
                                           CloseCode.TOO_BIG))
                continue
            try:
                self.handle_frame(data)
            except CloseError as exc:
                self.metrics.frame_rejected(self.endpoint, type(exc).__name__)
                self._close_for(exc)

    def count_frame_in(self, kind: str, size: int) -> None:
        counts = self._tally_in.get(kind)
        if counts is None:
            counts = self._tally_in[kind] = [0, 0]
        counts[0] += 1
        counts[1] += size

    def frame_kind_out(self, frame: bytes) -> str:
        """The type label of an outbound frame, for the metrics; must be cheap
        (no decoding) and from a small fixed set. Protocols override it."""
        return "frame"

    def _count_frame_out(self, frame: bytes) -> None:
        kind = self.frame_kind_out(frame)
        counts = self._tally_out.get(kind)
        if counts is None:
            counts = self._tally_out[kind] = [0, 0]
        counts[0] += 1
        counts[1] += len(frame)

    def _close_for(self, exc: CloseError) -> None:
        log.warning("closing on bad input: %d %s", int(exc.code), exc.reason, extra=self.extra)
        self.conn.close(exc.code, exc.reason)

    async def _finish(self) -> None:
        try:
            self.on_leave()
        finally:
            conn = self.conn
            if conn.state is State.OPEN:
                conn.state = State.CLOSING
            conn.stop_sender()
            record = conn.finish(self._client_code, self._client_reason, self.room_name)
            self.server.connections.pop(conn.id, None)
            self.metrics.connection_closed(self.endpoint, record)
            level = logging.WARNING if record.initiator is Initiator.ABNORMAL else logging.INFO
            s = record.stats
            log.log(level, "connection closed", extra={
                "conn_id": record.connection_id, "room": record.room or "-",
                "code": record.code, "reason": record.reason,
                "initiator": record.initiator.value, "duration": round(record.duration, 3),
                "frames_in": s.frames_in, "bytes_in": s.bytes_in,
                "frames_out": s.frames_out, "bytes_out": s.bytes_out,
                "last_frame": s.last_frame_type, "endpoint": self.endpoint})
            hook = self.server.hooks.on_disconnect
            if hook is not None:
                await self.server._call_hook(hook, record)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
