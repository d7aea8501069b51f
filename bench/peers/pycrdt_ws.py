"""pycrdt-websocket 0.16.5 baseline: ASGIServer(WebsocketServer) under uvicorn.

Usage: python peers/pycrdt_ws.py PORT

ASGIServer answers lifespan events but never starts the WebsocketServer, so a
thin ASGI wrapper runs ``async with WebsocketServer`` around the lifespan
exchange; websocket scopes go straight to ASGIServer. No store: a room lives
while it has clients (the load generator keeps one connected).
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer

log = logging.getLogger("pycrdt_ws_peer")


def _exception_handler(exc: Exception, logger: logging.Logger) -> bool:
    # pycrdt-websocket re-raises from serve() when no handler is set, which
    # kills the connection's ASGI task with a traceback per disconnect. Log
    # once per error instead and keep serving, as a deployed server would.
    logger.warning("pycrdt-websocket error: %r", exc)
    return True


websocket_server = WebsocketServer(exception_handler=_exception_handler, log=log)
asgi_server = ASGIServer(websocket_server)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "lifespan":
        await asgi_server(scope, receive, send)
        return
    async with websocket_server:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 1234
    logging.basicConfig(level=logging.WARNING)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")


if __name__ == "__main__":
    main()
