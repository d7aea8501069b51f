"""The side of ``collab serve``'s own protocol that its session sees.

:class:`SessionShim` is a mixin of
:class:`~collab.transport.fast.FastWebSocketProtocol` (one object per socket,
no ``__dict__``: it adds no slots, its state is the protocol's). It covers
everything between the HTTP request and the session:

- the request head: parsed, routed (:mod:`collab.transport.routing`),
  checked by the endpoint's gates, and turned into the session's ASGI scope;
  a path that is not one of our sockets is handed to the ASGI protocol;
- the session still sees ASGI for its handshake and its close (``receive``
  and ``send`` speak the few messages it uses), so the y-websocket and
  Hocuspocus sessions run unchanged on this path and on the ASGI one (collab
  mounted in someone else's server); tests/core runs under both;
- what the scope offers past ASGI: ``pump`` (data messages handed to the
  session's sink from ``data_received``), the direct writes of broadcasts
  (``ready``/``write``, :class:`~collab.transport.connection.DirectWrite`),
  and ``abort``.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from uvicorn.protocols.utils import get_remote_addr

from ..errors import CloseCode
from ..wire import websocket as ws
from .connection import new_connection_id
from .gates import Refusal
from .routing import Sink, socket_route, status_phrase, websocket_scope
from .uvicorn import CollabWebSocketProtocol, binary_frame

# The protocol's logger (transport.fast): one logger for one socket's lines.
log = logging.getLogger("collab.fast")

# Lifecycle: the request head is read, the session decides (accept or close),
# the socket is open, then it has ended (the disconnect is known).
HEAD, DECIDING, OPEN, ENDED = range(4)


class SessionShim:
    # The state of the session's side, the lifecycle with it (the rest of the
    # socket's is FastWebSocketProtocol's); no __dict__ on either.
    __slots__ = (
        "_close_sent",
        "_conn_id",
        "_connect_given",
        "_discarding",
        "_failure",
        "_head",
        "_key",
        "_other",
        "_pending",
        "_reader",
        "_sink",
        "_state",
    )

    if TYPE_CHECKING:  # given by FastWebSocketProtocol (transport.fast)
        ping_rate: float
        transport: asyncio.Transport
        app_state: Any
        _config: Any
        _server_state: Any
        _loop: asyncio.AbstractEventLoop
        _disconnect: dict[str, Any] | None
        _writable: asyncio.Future[None] | None

        def _process(self) -> None: ...
        def _arm_keepalive(self, delay: float | None) -> None: ...
        def _close_transport(self) -> None: ...
        def _end(self, code: int, reason: str, *, by_server: bool) -> None: ...
        async def _wait(self) -> None: ...
        def _resume_reading(self) -> None: ...

    def __init__(self) -> None:
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
        self._close_sent = False
        self._failure: BaseException | None = None

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
            routed = socket_route(self._config.loaded_app, unquote(raw_path))
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
        scope = websocket_scope(
            request,
            raw_path,
            query,
            child,
            self.transport,
            conn_id=self._conn_id,
            abort=self.abort,
            direct=self,
            pump=self.pump,
        )
        refusal = endpoint.refusal(scope)
        if refusal is not None:
            self._respond(refusal.status, refusal.reason, refusal.headers)
            return
        self._state = DECIDING
        task = self._loop.create_task(endpoint.serve(scope, self.receive, self.send))
        tasks = self._server_state.tasks
        tasks.add(task)
        task.add_done_callback(self._session_done)

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
        phrase = status_phrase(status)
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
