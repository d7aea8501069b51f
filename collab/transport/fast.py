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

What the session sees (the request head turned into its scope, ASGI for its
handshake and its close, ``pump``, the direct writes) is the
:class:`~collab.transport.shim.SessionShim` mixin; which sockets are served
here is Starlette's own routing (:mod:`collab.transport.routing`), and
anything else is handed, bytes and all, to the ASGI protocol
(:mod:`collab.transport.uvicorn`). This module is the socket itself: the
asyncio callbacks, frames, keepalive, shutdown and closing the transport.

Close accounting is the same as the ASGI protocol's: 1006 for a peer gone
without a close frame, 1011 "keepalive ping timeout" (aborted, since a peer
that does not answer pings does not read either), 1001 "server shutting
down" at uvicorn's shutdown, client pings answered at a bounded rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from typing import Any

from ..errors import CloseCode, CloseError
from ..wire import websocket as ws
from .connection import ABORT_AFTER, disconnect_message
from .limits import TokenBucket
from .shim import ENDED, HEAD, OPEN, SessionShim
from .uvicorn import PING_BURST, SHUTDOWN_REASON

log = logging.getLogger("collab.fast")


class FastWebSocketProtocol(SessionShim, asyncio.Protocol):
    # Pings answered per second (protocol_class() makes a subclass with the setting).
    ping_rate = 2.0

    # Thousands of these live at once: no per-instance __dict__ (the
    # session's side has its own slots, in SessionShim).
    __slots__ = (
        "_config",
        "_disconnect",
        "_loop",
        "_ping_payload",
        "_pinged",
        "_pings",
        "_read_paused",
        "_server_state",
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
        super().__init__()  # SessionShim's state: the lifecycle at HEAD
        self._config = config
        self._server_state = server_state
        self.app_state = app_state
        self._loop: asyncio.AbstractEventLoop = _loop or asyncio.get_event_loop()
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._read_paused = False
        self._disconnect: dict[str, Any] | None = None
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
            self._disconnect = disconnect_message(code, reason, by_server=by_server)
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
