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

from ..errors import CloseCode, CloseError, StoreError
from ..hooks import AuthRequest, AuthResult, ConnectEvent, HookRunner
from ..observability.metrics import Metrics
from ..rooms.room import Peer, Room
from .connection import PUMP_SCOPE_KEY, TRANSPORT_CLOSE, Connection, Initiator, State
from .gates import header
from .limits import TokenBucket

if TYPE_CHECKING:
    from ..server import CollabServer

log = logging.getLogger("collab.session")

# How long we wait for the client to answer our close frame.
CLOSE_TIMEOUT = 5.0
# uvicorn's code for the sockets it closes at its own shutdown.
_ASGI_SHUTDOWN = 1012


class Session:
    """One socket's conversation. Given the server (rooms, connection
    tracking, its open/draining state), the hook runner and the metrics."""

    endpoint = "ywebsocket"

    def __init__(
        self,
        server: CollabServer,
        hooks: HookRunner,
        metrics: Metrics,
        scope: Scope,
        receive: Receive,
        send: Send,
        conn: Connection,
    ) -> None:
        self.server = server
        self.settings = server.settings
        self.hooks = hooks
        self.metrics = metrics
        self.scope = scope
        self._receive = receive
        self._send = send
        self.conn = conn
        # Every room this socket joined, in order: named in its log lines and close record.
        self.rooms: list[str] = []
        self.context: dict[str, Any] = {}
        self._client_code: int | None = None
        self._client_reason = ""
        self._accepted = False
        # COLLAB_FRAME_RATE / COLLAB_FRAME_BURST (rate 0: no limit).
        self._frames = TokenBucket(self.settings.frame_rate, float(self.settings.frame_burst))
        self.query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        # Frames are tallied as plain ints (Metrics.flush feeds Prometheus).
        self.count_frame_in = metrics.counter("in", self.endpoint)

    @functools.cached_property
    def headers(self) -> dict[str, str]:
        """Request headers, lower-cased; decoded on first use only (the
        authenticate hook), not kept for every idle socket."""
        return {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in self.scope.get("headers", [])
        }

    @property
    def room_names(self) -> str:
        return ",".join(self.rooms)

    @property
    def extra(self) -> dict[str, str]:
        return {"conn_id": self.conn.id, "room": self.room_names or "-"}

    # -- to implement -------------------------------------------------------

    async def run(self) -> None:
        raise NotImplementedError

    def handle_frame(self, frame: bytes) -> None:
        raise NotImplementedError

    def on_leave(self) -> None:
        """Leave every room joined (called once, when the socket is gone)."""

    # -- driver -------------------------------------------------------------

    async def serve(self) -> None:
        with self.server.track(self.conn):
            self.metrics.connection_opened(self.endpoint)
            await self._serve()

    async def _serve(self) -> None:
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
        await self._send(
            {"type": "websocket.accept", "subprotocol": offered[0] if offered else None}
        )
        self._accepted = True
        client = self.scope.get("client")
        extra: dict[str, Any] = {
            **self.extra,
            "endpoint": self.endpoint,
            "client": f"{client[0]}:{client[1]}" if client else "-",
        }
        forwarded = header(self.scope, b"x-forwarded-for")
        if forwarded is not None:
            extra["forwarded_for"] = forwarded
        # The path without the query: a token may ride in ?token=.
        log.info("connection opened", extra={**extra, "path": self.scope.get("path", "")})

    async def authenticate(self, room: str, token: str | None = None) -> AuthResult:
        """The built-in JWT check, then the authenticate hook (see HookRunner)."""
        if not self.hooks.checks_access:
            return AuthResult.allow()
        request = AuthRequest(
            self.conn.id, room, self.token() if token is None else token, self.headers, self.query
        )
        result = await self.hooks.authenticate(request)
        if not result.allowed:
            log.info("authentication denied: %s", result.reason, extra=self.extra)
            self.metrics.auth_denied(self.endpoint)
        self.context.update(result.context)
        return result

    async def join_room(self, name: str, peer: Peer, result: AuthResult) -> Room | None:
        try:
            room = await self.server.rooms.join(name, peer)
        except StoreError as exc:
            log.error("cannot load room: %s", exc, extra=self.extra)
            await self.reject(CloseCode.TRY_AGAIN_LATER, "document store unavailable")
            return None
        await self.connected(name, result)
        return room

    async def connected(self, name: str, result: AuthResult) -> None:
        """``name`` is open on this socket: note it, tell the on_connect hook."""
        if name not in self.rooms:
            self.rooms.append(name)
        ok = await self.hooks.run(
            self.hooks.hooks.on_connect,
            ConnectEvent(self.conn.id, name, result.readonly, dict(result.context)),
        )
        if not ok:
            self.conn.close(CloseCode.INTERNAL, "on_connect hook failed")

    async def reject(self, code: int, reason: str, *, flush: bool = False) -> None:
        log.info("rejecting connection: %s %s", int(code), reason, extra=self.extra)
        self.conn.close(code, reason, flush=flush)
        await self._await_disconnect()

    async def _await_disconnect(self) -> None:
        try:
            await asyncio.wait_for(self._until_disconnect(), CLOSE_TIMEOUT)
        except TimeoutError:
            # A client that stopped reading never takes the close frame, and
            # the socket's write buffer (a document-sized step2, say) would
            # live as long as its TCP connection: drop it now.
            log.warning("client did not answer the close frame", extra=self.extra)
            self.conn.abort()

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
        """Frames to :meth:`on_message` until the socket ends: from our own
        protocol's callbacks under ``collab serve`` (``pump``), else from the
        ASGI receive."""
        pump = self.scope.get(PUMP_SCOPE_KEY)
        if pump is not None:
            self._disconnected(await pump(self.on_message))
            return
        conn = self.conn
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
            self.on_message(data if data is not None else message.get("text") or "")

    def on_message(self, data: bytes | str) -> None:
        """One data message: counted, checked (text, rate, size), handled.
        Dropped once this socket is closing."""
        conn = self.conn
        if conn.state is not State.OPEN:
            return
        if isinstance(data, str):
            self.metrics.frame_rejected(self.endpoint, "text_frame")
            self._close_for(
                CloseError("text frames are not part of the protocol", CloseCode.UNSUPPORTED_DATA)
            )
            return
        conn.stats.frames_in += 1
        conn.stats.bytes_in += len(data)
        s = self.settings
        if not self._frames.take():
            self.metrics.frame_rejected(self.endpoint, "frame_rate")
            self._close_for(
                CloseError(
                    f"more than {s.frame_rate:g} frames per second (burst {s.frame_burst:g})",
                    CloseCode.POLICY,
                )
            )
            return
        limit = s.max_frame_bytes
        if len(data) > limit:
            self.metrics.frame_rejected(self.endpoint, "too_big")
            self._close_for(
                CloseError(f"frame of {len(data)} bytes exceeds {limit}", CloseCode.TOO_BIG)
            )
            return
        try:
            self.handle_frame(data)
        except CloseError as exc:
            self.metrics.frame_rejected(self.endpoint, type(exc).__name__)
            self._close_for(exc)

    def _close_for(self, exc: CloseError) -> None:
        log.warning("closing on bad input: %d %s", int(exc.code), exc.reason, extra=self.extra)
        self.conn.close(exc.code, exc.reason)

    async def _finish(self) -> None:
        try:
            self.on_leave()
        finally:
            record = self.conn.finish(self._client_code, self._client_reason, self.room_names)
            self.metrics.connection_closed(self.endpoint, record)
            level = logging.WARNING if record.initiator is Initiator.ABNORMAL else logging.INFO
            s = record.stats
            log.log(
                level,
                "connection closed",
                extra={
                    "conn_id": record.connection_id,
                    "room": record.room or "-",
                    "code": record.code,
                    "reason": record.reason,
                    "initiator": record.initiator.value,
                    "duration": round(record.duration, 3),
                    "frames_in": s.frames_in,
                    "bytes_in": s.bytes_in,
                    "frames_out": s.frames_out,
                    "bytes_out": s.bytes_out,
                    "last_frame": s.last_frame_type,
                    "endpoint": self.endpoint,
                },
            )
            await self.hooks.run(self.hooks.hooks.on_disconnect, record)
