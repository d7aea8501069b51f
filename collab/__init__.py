"""collab: a Yjs collaborative-editing sync server (Starlette / ASGI)."""

from .app import create_app
from .config import Settings
from .hooks import (
                    AuthRequest,
                    AuthResult,
                    ChangeEvent,
                    ConnectEvent,
                    Hooks,
                    RoomEvent,
                    StatelessEvent,
)

__all__ = ["AuthRequest", "AuthResult", "ChangeEvent", "ConnectEvent", "Hooks", "RoomEvent",
           "Settings", "StatelessEvent", "create_app"]
