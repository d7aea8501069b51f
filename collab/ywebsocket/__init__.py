"""The y-websocket protocol endpoint: one document per socket, the room is the path."""

from __future__ import annotations

from .session import YWebsocketSession

__all__ = ["YWebsocketSession"]
