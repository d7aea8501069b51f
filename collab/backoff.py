"""Reconnect delays: exponential backoff with full jitter, up to a cap.

One home for every retry loop (the Redis backplane, the Python client):
clients retrying in lockstep after one outage are how the AppSync reconnect
storm reached 80,000 connections (DESIGN.md §2). Full jitter spreads them.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Uniform in ``[0, min(cap, base * 2**attempt)]``."""
    return random.uniform(0.0, min(cap, base * (2 ** min(attempt, 30))))
