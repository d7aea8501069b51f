"""Checks a WebSocket handshake must pass before the upgrade.

A gate looks at the ASGI scope (headers, peer address, path) and either
admits the socket or refuses it with an HTTP status: 403 for an Origin that
is not allowed, 503 past the connection limit, 429 with ``Retry-After`` past
the connect rate. A refusal costs no session, no connection object and no
room: it is answered at the handshake, counted in ``collab_handshakes_refused``
and logged, before anything is allocated for the socket.

Gates are given to the endpoint when ``create_app`` builds it, in order; the
first refusal wins.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from starlette.types import Receive, Scope, Send

from ..access.origins import OriginPolicy
from ..observability.redact import redact_url

log = logging.getLogger("collab.gates")

# The ASGI extension that lets an app answer a handshake with any HTTP response.
HTTP_RESPONSE_EXTENSION = "websocket.http.response"


@dataclass(frozen=True, slots=True)
class Refusal:
    """``status`` and a short ``reason`` (the response body and the log line;
    never a secret); ``label`` is the metric label, from a small fixed set."""

    status: int
    reason: str
    label: str
    headers: tuple[tuple[str, str], ...] = ()


class Gate(Protocol):
    def admit(self, scope: Scope) -> Refusal | None:
        """None to let the handshake through, else why not."""


def first_refusal(gates: Sequence[Gate], scope: Scope) -> Refusal | None:
    for gate in gates:
        refusal = gate.admit(scope)
        if refusal is not None:
            return refusal
    return None


async def refuse(refusal: Refusal, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer the handshake with ``refusal`` instead of upgrading it.

    Servers without the HTTP-response extension can only be told to close
    before accepting, which they answer with 403 whatever the status.
    """
    message = await receive()
    if message["type"] != "websocket.connect":
        return  # the client is gone already
    if HTTP_RESPONSE_EXTENSION not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason[:120]})
        return
    body = refusal.reason.encode("utf-8")
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    await send(
        {"type": "websocket.http.response.start", "status": refusal.status, "headers": headers}
    )
    await send({"type": "websocket.http.response.body", "body": body})


def log_refusal(refusal: Refusal, scope: Scope) -> None:
    client = scope.get("client")
    log.info(
        "handshake refused: %d %s",
        refusal.status,
        refusal.reason,
        extra={
            "conn_id": "-",
            "reason": refusal.label,
            "path": redact_url(scope.get("path", "")),
            "client": f"{client[0]}:{client[1]}" if client else "-",
        },
    )


def header(scope: Scope, name: bytes) -> str | None:
    """The first value of a request header (``name`` lower-case), or None."""
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class OriginGate:
    """403 for a browser handshake from a page whose Origin is not allowed
    (CSWSH: any page can open a socket to ``ws://127.0.0.1:1234`` and ride the
    user's cookies). A request without Origin is not a browser's; it passes
    unless ``require_origin``."""

    def __init__(self, policy: OriginPolicy, *, require_origin: bool) -> None:
        self._policy = policy
        self._require = require_origin

    def admit(self, scope: Scope) -> Refusal | None:
        origin = header(scope, b"origin")
        if self._policy.allows(origin, self._require):
            return None
        why = "no Origin header" if origin is None else "Origin not allowed"
        return Refusal(403, f"{why} (COLLAB_ALLOWED_ORIGINS)", "origin")


class PortGate:
    """No WebSocket on the operational port (``COLLAB_METRICS_PORT``): it
    serves health, readiness and metrics only."""

    def __init__(self, ops_port: int) -> None:
        self._port = ops_port

    def admit(self, scope: Scope) -> Refusal | None:
        server = scope.get("server")
        if server is not None and server[1] == self._port:
            return Refusal(404, "the operational port serves no WebSocket", "ops_port")
        return None
