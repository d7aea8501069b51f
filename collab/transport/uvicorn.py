"""uvicorn's WebSocket protocol, made to tell the app why a socket ended.

Stock uvicorn (websockets sans-I/O implementation) reports two different
endings the same way, which is exactly how the Fargate incident's closes went
unexplained:

- a peer that vanished without a close frame (killed tab, dead NAT, reset)
  arrives as ``websocket.disconnect`` with code 1005, although RFC 6455 says
  1006 (1005 means "a close frame without a status code");
- a peer that missed the keepalive pong is closed by uvicorn with
  1011 "keepalive ping timeout", but the app is only told 1005, as if the
  client had left;
- at its shutdown uvicorn closes the sockets left with a bare 1012 (no
  reason); ours closes them with 1001 "server shutting down", as the drain does.

It also bounds what a client can make it buffer: pings are answered at most
``ping_rate`` per second (a ping flood from a client that does not read would
otherwise pile pongs up in the write buffer), a socket that missed the
keepalive pong is aborted rather than closed (a close waits for a buffer that
a non-reader never drains), and the app is handed ``abort`` for the same
reason (:data:`~collab.transport.connection.ABORT_SCOPE_KEY`).

:class:`CollabWebSocketProtocol` queues the precise disconnect first (the app
reads the first one; uvicorn's own follows, unread). A close uvicorn made
itself carries :data:`~collab.connection.TRANSPORT_CLOSE` so the session
accounts it as a server close. ``collab serve`` uses it; when collab is
mounted in someone else's uvicorn the stock behaviour applies (documented in
docs/observability.md).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.protocol import State as WSState

from .connection import (
    ABORT_SCOPE_KEY,
    CONN_ID_SCOPE_KEY,
    DIRECT_SCOPE_KEY,
    disconnect_message,
    new_connection_id,
)
from .limits import TokenBucket

log = logging.getLogger("collab.uvicorn")

# What we override; checked so a uvicorn upgrade that renames them falls back loudly.
_OVERRIDDEN = (
    "connection_made",
    "handle_connect",
    "keepalive_timeout",
    "connection_lost",
    "handle_parser_exception",
    "shutdown",
    "stop_keepalive",
)
SHUTDOWN_REASON = "server shutting down"
# Pings a client may send at once before the rate applies.
PING_BURST = 10.0


class _ConnLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """uvicorn's logger with our connection id on every line it writes about
    the socket (uvicorn reads ``.level`` directly, which adapters lack)."""

    @property
    def level(self) -> int:
        return int(self.logger.level)


class CollabWebSocketProtocol(WebSocketsSansIOProtocol):
    # Pings answered per second (protocol_class() makes a subclass with the setting).
    ping_rate = 2.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The connection id is given here, at the first byte, so that uvicorn's
        # own lines about this socket carry it too (the API Gateway incident).
        self.collab_conn_id = new_connection_id()
        self.logger = _ConnLogger(  # type: ignore[assignment]
            logging.getLogger("uvicorn.error"), {"conn_id": self.collab_conn_id}
        )
        self.conn.logger = self.logger  # the websockets protocol's own lines
        self.pings_ignored = 0
        self._pings = TokenBucket(self.ping_rate, PING_BURST)
        # The sans-I/O protocol answers a ping inside recv_frame, before any
        # event reaches us: a ping past the rate is dropped before it.
        answer = self.conn.recv_frame

        def recv_frame(frame: Frame) -> None:
            if frame.opcode is Opcode.PING and not self._pings.take():
                self.pings_ignored += 1
                return
            answer(frame)

        self.conn.recv_frame = recv_frame  # type: ignore[method-assign]
        super().connection_made(transport)

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope[CONN_ID_SCOPE_KEY] = self.collab_conn_id  # type: ignore[literal-required]
            scope[ABORT_SCOPE_KEY] = self.transport.abort  # type: ignore[literal-required]
            if not self.conn.extensions:  # settled by the handshake: raw frames need none
                scope[DIRECT_SCOPE_KEY] = DirectWriter(self)  # type: ignore[literal-required]

    async def send(self, message: Any) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body"):
            # A handshake answered with an HTTP status (a gate's 429 or 503)
            # is complete; uvicorn would log an ERROR line for each, and a
            # connect storm would become a log storm.
            self.handshake_complete = True

    def keepalive_timeout(self) -> None:
        if not (self.close_sent or self.transport.is_closing() or self.disconnected):
            # uvicorn sends 1011 "keepalive ping timeout" right after this.
            self.queue.put_nowait(
                disconnect_message(1011, "keepalive ping timeout", by_server=True)
            )
        super().keepalive_timeout()
        # A peer that does not answer pings does not read either: closing
        # would wait for its write buffer to drain, which it never does.
        self.transport.abort()

    def handle_parser_exception(self) -> None:
        sent = self.conn.close_sent
        if sent is not None:  # the parser refused a frame and closed with this
            self.queue.put_nowait(disconnect_message(sent.code, sent.reason, by_server=True))
        super().handle_parser_exception()

    def shutdown(self) -> None:
        if self.handshake_complete and not (self.close_sent or self.disconnected):
            # uvicorn would send a bare 1012; `collab serve` drains with 1001 and
            # a reason first, and a socket still open here gets the same.
            self.stop_keepalive()
            self.queue.put_nowait(disconnect_message(1001, SHUTDOWN_REASON, by_server=True))
            self.conn.send_close(1001, SHUTDOWN_REASON)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.close_sent = True
            self.transport.close()
            return
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        if (
            self.handshake_complete
            and not self.disconnected
            and not self.close_sent
            and self.conn.close_rcvd is None
        ):
            # Gone without a close frame: that is 1006, not 1005.
            self.queue.put_nowait(disconnect_message(1006, "connection lost without a close frame"))
        super().connection_lost(exc)


def protocol_class(
    ping_rate: float | None = None, *, fast: bool = True
) -> type[asyncio.Protocol] | str:
    """The ``ws=`` argument for uvicorn. By default collab's own protocol
    (:mod:`collab.transport.fast`: our sockets served from its callbacks,
    anything else handed to :class:`CollabWebSocketProtocol`); ``fast=False``
    gives the ASGI one alone. Either needs the uvicorn internals it
    overrides; without them "auto" (stock behaviour, with a warning).
    ``ping_rate``: pings answered per second (``COLLAB_PING_ANSWER_RATE``)."""
    if not all(callable(getattr(WebSocketsSansIOProtocol, name, None)) for name in _OVERRIDDEN):
        log.warning(
            "uvicorn's websockets protocol is not the expected one: 1005/1006 and "
            "keepalive closes are reported as uvicorn reports them"
        )
        return "auto"
    base: type[asyncio.Protocol] = CollabWebSocketProtocol
    if fast:
        from .fast import FastWebSocketProtocol

        base = FastWebSocketProtocol
    if ping_rate is None:
        return base
    return type(base.__name__, (base,), {"ping_rate": ping_rate, "__slots__": ()})


class DirectWriter:
    """Writes binary frames straight to the socket, skipping the ASGI send.

    A broadcast reaches every peer in the same event-loop turn, as one
    ``transport.write`` of bytes framed once per broadcast, instead of one
    task wake-up and one trip through the ASGI and websockets layers per peer
    (the fan-out cost the benchmark measured). It is only used while the
    socket is open and not under flow control, and only on sockets without
    an extension (no permessage-deflate: ours never negotiates one);
    otherwise the connection queues and goes through the ASGI send, which
    waits for the socket.
    Frames are whole, so they never interleave with uvicorn's pings or close.
    """

    __slots__ = ("_proto",)

    def __init__(self, proto: CollabWebSocketProtocol) -> None:
        self._proto = proto

    def ready(self) -> bool:
        # OPEN ends as soon as either side sends a close frame (uvicorn's own
        # closes included); a vanished peer shows as a closing transport.
        p = self._proto
        return p.conn.state is WSState.OPEN and p.writable.is_set() and not p.transport.is_closing()

    def write(self, payload: bytes) -> None:
        self._proto.transport.write(binary_frame(payload))


_last_payload: bytes = b""
_last_frame: bytes = b"\x82\x00"


def binary_frame(payload: bytes) -> bytes:
    """An unmasked, final, binary WebSocket frame (RFC 6455 §5.2) carrying
    ``payload``. The last result is kept: a broadcast hands the same bytes
    object to every peer in a row, so it is framed once."""
    global _last_payload, _last_frame
    if payload is _last_payload:
        return _last_frame
    n = len(payload)
    if n < 126:
        header = bytes((0x82, n))
    elif n < 1 << 16:
        header = bytes((0x82, 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x82, 127)) + n.to_bytes(8, "big")
    _last_payload, _last_frame = payload, header + payload
    return _last_frame
