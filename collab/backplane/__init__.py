"""Cross-instance pub/sub behind the small :class:`Backplane` interface."""

from __future__ import annotations

from .base import Backplane, Handler, ResubscribedCallback, backoff_delay
from .memory import MemoryBackplane, MemoryHub

__all__ = ["Backplane", "Handler", "MemoryBackplane", "MemoryHub", "ResubscribedCallback",
           "backoff_delay"]
