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
    client = scope.get("client")
    log.info("handshake refused: %d %s", refusal.status, refusal.reason, extra={
        "conn_id": "-", "reason": refusal.label, "path": redact_url(scope.get("path", "")),
        "client": f"{client[0]}:{client[1]}" if client else "-"})
    if HTTP_RESPONSE_EXTENSION not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008, "reason": refusal.reason[:120]})
        return
    body = refusal.reason.encode("utf-8")
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(body)).encode("ascii"))]
    headers += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in refusal.headers]
    await send({"type": "websocket.http.response.start", "status": refusal.status,
                "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body})
