"""The raw ASGI websocket endpoint of one protocol (Starlette passes
non-function endpoints through as ASGI apps)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from starlette.types import Receive, Scope, Send

from ..hooks import HookRunner
from ..observability.metrics import Metrics
from .connection import (
    ABORT_SCOPE_KEY,
    CONN_ID_SCOPE_KEY,
    DIRECT_SCOPE_KEY,
    Connection,
    new_connection_id,
)
from .gates import Gate, Refusal, first_refusal, log_refusal, refuse

if TYPE_CHECKING:
    from ..server import CollabServer


class _Session(Protocol):
    async def serve(self) -> None: ...


class SessionClass(Protocol):
    endpoint: str

    def __call__(
        self,
        server: CollabServer,
        hooks: HookRunner,
        metrics: Metrics,
        scope: Scope,
        receive: Receive,
        send: Send,
        conn: Connection,
    ) -> _Session: ...


class SocketEndpoint:
    """Runs the handshake's gates, then gives each socket its
    :class:`Connection` and its protocol's session."""

    def __init__(
        self,
        server: CollabServer,
        hooks: HookRunner,
        metrics: Metrics,
        session_cls: SessionClass,
        gates: Sequence[Gate] = (),
    ) -> None:
        self._server = server
        self._gates = tuple(gates)
        self._hooks = hooks
        self._metrics = metrics
        self._session_cls = session_cls
        self._count_out = metrics.counter("out", session_cls.endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = self.refusal(scope)
        if refusal is not None:
            await refuse(refusal, scope, receive, send)
            return
        await self.serve(scope, receive, send)

    def refusal(self, scope: Scope) -> Refusal | None:
        """Why the gates refuse this handshake (counted and logged), or None."""
        refusal = first_refusal(self._gates, scope) if self._gates else None
        if refusal is not None:
            self.report(refusal, scope)
        return refusal

    def report(self, refusal: Refusal, scope: Scope) -> None:
        """Count and log a handshake answered with an HTTP status."""
        self._metrics.handshake_refused(self._session_cls.endpoint, refusal.label)
        log_refusal(refusal, scope)

    async def serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A socket the gates let through: its connection and its session."""
        s = self._server.settings
        # Under `collab serve` our uvicorn protocol has already given the id.
        conn_id = scope.get(CONN_ID_SCOPE_KEY) or new_connection_id()
        conn = Connection(
            conn_id,
            send,
            max_frames=s.outbound_queue_frames,
            max_bytes=s.outbound_queue_bytes,
            path=scope.get("path", ""),
            direct=scope.get(DIRECT_SCOPE_KEY),
            on_sent=self._count_out,
            on_overflow=self._metrics.queue_overflows.inc,
            abort=scope.get(ABORT_SCOPE_KEY),
        )
        session = self._session_cls(
            self._server, self._hooks, self._metrics, scope, receive, send, conn
        )
        await session.serve()
