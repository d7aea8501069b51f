"""collab: a Yjs collaborative-editing sync server (Starlette / ASGI)."""

from .app import create_app
from .client import YClient
from .config import RedisSettings, Settings
from .hooks import (
    AuthRequest,
    AuthResult,
    ChangeEvent,
    ConnectEvent,
    Hooks,
    RoomEvent,
    StatelessEvent,
)
from .transport.connection import CloseRecord

__all__ = [
    "AuthRequest",
    "AuthResult",
    "ChangeEvent",
    "CloseRecord",
    "ConnectEvent",
    "Hooks",
    "RedisSettings",
    "RoomEvent",
    "Settings",
    "StatelessEvent",
    "YClient",
    "create_app",
]
