"""Cross-instance sharing of rooms: the small :class:`Backplane` pub/sub
interface (memory and Redis implementations) and the :class:`Replicator` that
shares rooms through it."""

from __future__ import annotations

from .base import Backplane, Handler, ResubscribedCallback
from .memory import MemoryBackplane, MemoryHub
from .replicator import Replicator

__all__ = [
    "Backplane",
    "Handler",
    "MemoryBackplane",
    "MemoryHub",
    "Replicator",
    "ResubscribedCallback",
]
