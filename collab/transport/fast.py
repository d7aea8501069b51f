"""``collab serve``'s own WebSocket protocol: frames from protocol callbacks.

uvicorn parses the HTTP request and, on an upgrade, hands the socket to the
``ws=`` protocol class. This one serves collab's socket endpoints itself:

- a frame is parsed in ``data_received`` (:class:`~collab.wire.websocket.FrameReader`)
  and handed to the session's ``on_message`` in the same callback: no ASGI
  receive queue, no task wake-up and no pause/resume of reading per frame;
- an idle socket holds this object, its reader, and its session waiting on
  one future: no websockets protocol, no uvicorn queue and events, no
  Starlette request scope and middleware frames;
- broadcasts are written straight to the transport (``ready``/``write``,
  the :class:`~collab.transport.connection.DirectWrite` interface).

The session still sees ASGI for its handshake and its close (``receive`` and
``send`` below speak the few messages it uses), so the y-websocket and
Hocuspocus sessions run unchanged on this path and on the ASGI one
(collab mounted in someone else's server); tests/core runs under both.

Routing is Starlette's own: the request path is matched against the app's
routes, and only a match whose endpoint is a
:class:`~collab.transport.endpoint.SocketEndpoint` is served here. Anything
else (an app with middleware, a path no socket lives on) is handed, bytes
and all, to the ASGI protocol (:mod:`collab.transport.uvicorn`), which
behaves as before. Close accounting is the same as there: 1006 for a peer
gone without a close frame, 1011 "keepalive ping timeout" (aborted, since a
peer that does not answer pings does not read either), 1001 "server
shutting down" at uvicorn's shutdown, client pings answered at a bounded rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import unquote

from starlette.applications import Starlette
from starlette.routing import Match, WebSocketRoute
from uvicorn.protocols.utils import get_local_addr, get_remote_addr, is_ssl

from ..errors import CloseCode, CloseError
from ..wire import websocket as ws
from .connection import (
    ABORT_AFTER,
    ABORT_SCOPE_KEY,
    CONN_ID_SCOPE_KEY,
    DIRECT_SCOPE_KEY,
    PUMP_SCOPE_KEY,
    TRANSPORT_CLOSE,
    new_connection_id,
)
from .endpoint import SocketEndpoint
from .gates import Refusal
from .limits import TokenBucket
from .uvicorn import PING_BURST, SHUTDOWN_REASON, CollabWebSocketProtocol, binary_frame

log = logging.getLogger("collab.fast")

Sink = Callable[[bytes | str], None]
_PHRASES = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed"}
_PHRASES |= {426: "Upgrade Required", 429: "Too Many Requests", 431: "Headers Too Large"}
_PHRASES |= {500: "Internal Server Error", 503: "Service Unavailable"}

# Lifecycle: the request head is read, the session decides (accept or close),
# the socket is open, then it has ended (the disconnect is known).
HEAD, DECIDING, OPEN, ENDED = range(4)


def _starlette(app: object) -> Starlette | None:
    """Our Starlette app when its sockets can be served here (no middleware,
    which this path would skip), else None: everything goes the ASGI way."""
    while not isinstance(app, Starlette) and hasattr(app, "app"):
        app = app.app  # uvicorn's own wrappers (its trace logger)
    if not isinstance(app, Starlette) or app.user_middleware:
        return None
    return app


def _route(app: object, path: str) -> tuple[SocketEndpoint, Mapping[str, Any]] | None:
    """Starlette's routing, as its router would do it: the first full match
    wins, and it is served here only if it is one of our socket endpoints."""
    starlette = _starlette(app)
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


def _disconnect(code: int, reason: str, by_server: bool) -> dict[str, Any]:
    message: dict[str, Any] = {"type": "websocket.disconnect", "code": code, "reason": reason}
    if by_server:
        message[TRANSPORT_CLOSE] = True
    return message


class FastWebSocketProtocol(asyncio.Protocol):
    # Pings answered per second (protocol_class() makes a subclass with the setting).
    ping_rate = 2.0

    # Thousands of these live at once: no per-instance __dict__.
    __slots__ = (
        "_close_sent",
        "_config",
        "_conn_id",
        "_connect_given",
        "_discarding",
        "_disconnect",
        "_failure",
        "_head",
        "_key",
        "_loop",
        "_other",
        "_pending",
        "_ping_payload",
        "_pinged",
        "_pings",
        "_read_paused",
        "_reader",
        "_server_state",
        "_sink",
        "_state",
        "_timer",
        "_waiter",
        "_writable",
        "app_state",
        "pings_ignored",
        "transport",
    )

    def __init__(self, config: Any, server_state: Any, app_state: Any, _loop: Any = None) -> None:
        if not config.loaded:
            config.load()
        self._config = config
        self._server_state = server_state
        self.app_state = app_state
        self._loop: asyncio.AbstractEventLoop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._state = HEAD
        self._other: CollabWebSocketProtocol | None = None
        self._head: bytearray | None = bytearray()
        self._reader: ws.FrameReader | None = None
        self._conn_id = ""
        self._key = b""
        self._connect_given = False
        self._sink: Sink | None = None
        self._pending: deque[bytes | str] | None = None
        self._discarding = False
        self._read_paused = False
        self._close_sent = False
        self._disconnect: dict[str, Any] | None = None
        self._failure: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._ping_payload: bytes | None = None
        self._pinged = False
        self._pings: TokenBucket | None = None  # made on the first ping
        self.pings_ignored = 0

    # -- asyncio callbacks ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._server_state.connections.add(self)

    def data_received(self, data: bytes) -> None:
        if self._other is not None:
            self._other.data_received(data)
        elif self._state is HEAD:
            self._read_head(data)
        elif self._reader is not None:
            self._reader.feed(data)
            if self._state is OPEN:
                self._process()
            else:  # frames before the 101: kept until the session accepts
                self._pause_reading()

    def eof_received(self) -> None:
        if self._other is not None:
            self._other.eof_received()
            return
        # Closed here, bounded (a peer that half-closed may not read what is
        # still buffered either); connection_lost reports 1006.
        self._close_transport()

    def pause_writing(self) -> None:
        if self._other is not None:
            self._other.pause_writing()
        else:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        if self._other is not None:
            self._other.resume_writing()
        else:
            self._wake_writers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._other is not None:
            self._other.connection_lost(exc)
            return
        self._server_state.connections.discard(self)
        self._cancel_timer()
        self._end(1006, "connection lost without a close frame", by_server=False)
        self._state = ENDED
        self._wake_writers()

    # -- the request head -------------------------------------------------------

    def _read_head(self, data: bytes) -> None:
        head = self._head
        assert head is not None
        head += data
        end = head.find(b"\r\n\r\n")
        if end < 0:
            if len(head) > ws.MAX_HEAD_BYTES:
                self._respond(431, "request head too large")
            return
        raw, rest = bytes(head[:end]), bytes(head[end + 4 :])
        self._head = None
        try:
            request = ws.parse_request(raw)
            target = request.target
            raw_path, _, query = target.partition("?")
            routed = _route(self._config.loaded_app, unquote(raw_path))
            if routed is None:
                self._hand_over(raw + b"\r\n\r\n" + rest)
                return
        except ws.HandshakeError as exc:
            self._respond(exc.status, exc.reason, exc.headers)
            return
        endpoint, child = routed
        try:
            self._key = ws.check_upgrade(request)
        except ws.HandshakeError as exc:
            # Counted and logged as the gates' refusals are.
            client = get_remote_addr(self.transport)
            bad = Refusal(exc.status, exc.reason, "bad_handshake", exc.headers)
            endpoint.report(bad, {"path": raw_path, "client": client})
            self._respond(exc.status, exc.reason, exc.headers)
            return
        self._reader = ws.FrameReader(self._config.ws_max_size)
        if rest:
            self._reader.feed(rest)
        self._conn_id = new_connection_id()
        scope = self._scope(request, unquote(raw_path), raw_path, query, child)
        refusal = endpoint.refusal(scope)
        if refusal is not None:
            self._respond(refusal.status, refusal.reason, refusal.headers)
            return
        self._state = DECIDING
        task = self._loop.create_task(endpoint.serve(scope, self.receive, self.send))
        tasks = self._server_state.tasks
        tasks.add(task)
        task.add_done_callback(self._session_done)

    def _scope(
        self, request: ws.Request, path: str, raw_path: str, query: str, child: Mapping[str, Any]
    ) -> dict[str, Any]:
        scope: dict[str, Any] = {
            "type": "websocket",
            "scheme": "wss" if is_ssl(self.transport) else "ws",
            "server": get_local_addr(self.transport),
            "client": get_remote_addr(self.transport),
            "root_path": "",
            "path": path,
            "raw_path": raw_path.encode("latin-1"),
            "query_string": query.encode("latin-1"),
            "headers": request.headers,
            "subprotocols": request.header_tokens(b"sec-websocket-protocol"),
            CONN_ID_SCOPE_KEY: self._conn_id,
            ABORT_SCOPE_KEY: self.abort,
            DIRECT_SCOPE_KEY: self,
            PUMP_SCOPE_KEY: self.pump,
        }
        scope.update(child)
        return scope

    def _hand_over(self, request: bytes) -> None:
        """Not one of our sockets: the ASGI protocol serves it, as before.
        This object stays the transport's protocol (uvicorn sets it after
        the first bytes) and passes every callback on."""
        self._server_state.connections.discard(self)
        other = self._other = CollabWebSocketProtocol(
            config=self._config, server_state=self._server_state, app_state=self.app_state
        )
        other.ping_rate = self.ping_rate
        other.connection_made(self.transport)
        other.data_received(request)

    def _respond(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()) -> None:
        phrase = _PHRASES.get(status, "Error")
        self.transport.write(ws.http_response(status, phrase, reason, headers))
        self._close_transport()
        self._state = ENDED

    def _session_done(self, task: asyncio.Task[None]) -> None:
        self._server_state.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "socket session failed", exc_info=task.exception(), extra={"conn_id": self._conn_id}
            )
        if self._state is not ENDED:  # the session ended without a close
            if self._state is OPEN and not self._close_sent:
                self.transport.write(ws.close_frame(CloseCode.NORMAL))
            self._close_transport()

    # -- the session's side: ASGI for the handshake and the close ---------------

    async def receive(self) -> dict[str, Any]:
        if not self._connect_given:
            self._connect_given = True
            return {"type": "websocket.connect"}
        # Past the handshake the session only waits for the end; what it
        # would be sent meanwhile is dropped (it reads frames through pump).
        self._discarding = True
        if self._pending:
            self._pending.clear()
        self._resume_reading()
        while self._disconnect is None:
            await self._wait()
        return self._disconnect

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            while self._writable is not None and self._state is not ENDED:
                await asyncio.shield(self._writable)
            if self._state is ENDED or self._close_sent:
                raise ConnectionResetError("the socket has ended")
            data = message.get("bytes")
            if data is None:
                data = ws.encode_frame(ws.Opcode.TEXT, message["text"].encode("utf-8"))
                self.transport.write(data)
            else:
                self.transport.write(binary_frame(data))
        elif kind == "websocket.accept":
            if self._state is not DECIDING:
                return  # gone during the decision (shut down, dropped)
            extra = b"".join(k + b": " + v + b"\r\n" for k, v in self._server_state.default_headers)
            self.transport.write(ws.accept_response(self._key, message.get("subprotocol"), extra))
            self._state = OPEN
            self._arm_keepalive(self._config.ws_ping_interval)
            self._resume_reading()
            self._process()
        elif kind == "websocket.close":
            if self._state is DECIDING:  # closed before accepting: HTTP 403, as ASGI says
                self._respond(403, "refused")
                self._end(CloseCode.ABNORMAL, "", by_server=True)
            elif self._state is OPEN and not self._close_sent:
                self._close_sent = True
                self.transport.write(
                    ws.close_frame(message.get("code", 1000), message.get("reason") or "")
                )
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} on a collab socket")

    async def pump(self, sink: Sink) -> dict[str, Any]:
        """Hand every data message to ``sink`` (in ``data_received``) until
        the socket ends; return its disconnect message. An exception from
        ``sink`` stops the delivery and is raised here."""
        self._sink = sink
        pending, self._pending = self._pending, None
        while pending:
            sink(pending.popleft())
        self._resume_reading()
        while self._disconnect is None and self._failure is None:
            await self._wait()
        if self._failure is not None:
            failure, self._failure = self._failure, None
            raise failure
        return self._disconnect  # type: ignore[return-value]

    # DirectWrite: broadcasts straight to the socket while it takes them now.
    def ready(self) -> bool:
        return (
            self._state is OPEN
            and not self._close_sent
            and self._writable is None
            and not self.transport.is_closing()
        )

    def write(self, payload: bytes) -> None:
        self.transport.write(binary_frame(payload))

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    # -- frames -------------------------------------------------------------------

    def _process(self) -> None:
        reader = self._reader
        assert reader is not None
        while self._disconnect is None:
            try:
                message = reader.next()
            except CloseError as exc:
                self._protocol_failure(exc)
                return
            if message is None:
                return
            opcode, payload = message
            if opcode is ws.Opcode.BINARY or opcode is ws.Opcode.TEXT:
                if self._close_sent or self._discarding:
                    continue
                data: bytes | str = payload if opcode is ws.Opcode.BINARY else payload.decode()
                sink = self._sink
                if sink is None:  # the session is still joining: keep it, stop reading
                    if self._pending is None:
                        self._pending = deque()
                    self._pending.append(data)
                    self._pause_reading()
                    continue
                try:
                    sink(data)
                except Exception as exc:
                    self._sink, self._failure = None, exc
                    self._wake()
            elif opcode is ws.Opcode.PING:
                if self._pings is None:
                    self._pings = TokenBucket(self.ping_rate, PING_BURST)
                if not self._pings.take():
                    self.pings_ignored += 1
                elif not self._close_sent:
                    self.transport.write(ws.encode_frame(ws.Opcode.PONG, payload))
            elif opcode is ws.Opcode.PONG:
                if payload == self._ping_payload:
                    self._ping_payload = None
            else:
                self._close_received(payload)
                return

    def _close_received(self, payload: bytes) -> None:
        try:
            code, reason = ws.parse_close(payload)
        except CloseError as exc:
            self._protocol_failure(exc)
            return
        if not self._close_sent:  # echo it, as RFC 6455 §5.5.1 asks
            self._close_sent = True
            self.transport.write(ws.close_frame(code, reason))
        self._end(code, reason, by_server=False)
        self._close_transport()

    def _protocol_failure(self, exc: CloseError) -> None:
        log.warning(
            "closing on a bad frame: %d %s",
            int(exc.code),
            exc.reason,
            extra={"conn_id": self._conn_id},
        )
        if not self._close_sent:
            self._close_sent = True
            self.transport.write(ws.close_frame(exc.code, exc.reason))
        self._end(exc.code, exc.reason, by_server=True)
        self._close_transport()

    # -- keepalive and shutdown ---------------------------------------------------------

    def _arm_keepalive(self, delay: float | None) -> None:
        if self._config.ws_ping_interval:
            self._timer = self._loop.call_later(max(delay or 0.0, 0.0), self._keepalive)

    def _keepalive(self) -> None:
        """One timer per socket: ping, then at ``ws_ping_timeout`` check the
        pong came, then wait out the rest of ``ws_ping_interval``."""
        self._timer = None
        if self._state is not OPEN or self._close_sent:
            return
        interval, timeout = self._config.ws_ping_interval, self._config.ws_ping_timeout
        if self._pinged and self._ping_payload is not None and timeout is not None:
            self._end(CloseCode.INTERNAL, "keepalive ping timeout", by_server=True)
            self._close_sent = True
            self.transport.write(ws.close_frame(CloseCode.INTERNAL, "keepalive ping timeout"))
            self.transport.abort()
        elif self._pinged and timeout is not None:
            self._pinged = False
            self._arm_keepalive(interval - timeout)
        else:
            self._ping_payload = os.urandom(4)
            self._pinged = True
            self.transport.write(ws.encode_frame(ws.Opcode.PING, self._ping_payload))
            self._arm_keepalive(timeout if timeout is not None else interval)

    def shutdown(self) -> None:
        """uvicorn is exiting: 1001 and a reason (uvicorn's own would be a bare 1012)."""
        self._cancel_timer()
        if self._state is ENDED or self.transport.is_closing():
            self._close_transport()
            return
        if self._state is OPEN and not self._close_sent:
            self._close_sent = True
            self.transport.write(ws.close_frame(CloseCode.GOING_AWAY, SHUTDOWN_REASON))
        elif self._state is not OPEN:
            self.transport.write(ws.http_response(503, "Service Unavailable", SHUTDOWN_REASON))
        self._end(CloseCode.GOING_AWAY, SHUTDOWN_REASON, by_server=True)
        self._state = ENDED
        self._close_transport()

    # -- plumbing -------------------------------------------------------------------------

    def _close_transport(self) -> None:
        """Close once the write buffer is flushed, but abort if that has not
        happened ``ABORT_AFTER`` later: a peer that stopped reading (and sent
        its close, or half-closed) never takes a document-sized step2, and the
        transport would keep it for as long as its TCP connection lives."""
        self._cancel_timer()  # no keepalive past this; the slot holds the abort
        if self.transport.is_closing() and self.transport.get_write_buffer_size() == 0:
            return
        self.transport.close()
        self._timer = self._loop.call_later(ABORT_AFTER, self.abort)

    def _end(self, code: int, reason: str, *, by_server: bool) -> None:
        if self._disconnect is None:
            self._disconnect = _disconnect(code, reason, by_server)
            self._wake()

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
        await waiter

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _wake_writers(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.transport.is_closing():
            self._read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._read_paused:
            self._read_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
