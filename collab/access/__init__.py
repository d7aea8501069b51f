"""Access control, pure (no Starlette, no uvicorn): what the sockets consult.

- :mod:`.origins`: ``COLLAB_ALLOWED_ORIGINS`` -> :class:`OriginPolicy`
  (checked before the WebSocket upgrade; refuse with HTTP 403).
- :mod:`.tokens`: ``COLLAB_JWT_*`` -> :class:`TokenVerifier` -> :class:`Grant`,
  or :class:`TokenRejected` (4401) / :class:`RoomForbidden` (4403).
- :mod:`.patterns`: the ``rooms`` claim's ``*`` / ``**`` patterns.

Tokens in logged URLs are masked by :mod:`collab.observability.redact`.
"""

from .origins import OriginPolicy
from .patterns import RoomPattern, RoomPatterns
from .tokens import (
    LEEWAY_SECONDS,
    Grant,
    RoomForbidden,
    TokenProblem,
    TokenRejected,
    TokenVerifier,
)

__all__ = [
    "LEEWAY_SECONDS",
    "Grant",
    "OriginPolicy",
    "RoomForbidden",
    "RoomPattern",
    "RoomPatterns",
    "TokenProblem",
    "TokenRejected",
    "TokenVerifier",
]
