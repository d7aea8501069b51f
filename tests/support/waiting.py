"""One way to wait for state that has no event of its own.

Rooms, replicators and backplanes change in event-loop callbacks; a test
that needs "the room now holds X" polls for it with a deadline, here, rather
than sleeping a guessed while. (State owned by another process is polled over
HTTP with ``tests.observability.common.eventually``.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

POLL = 0.005


async def wait_until(check: Callable[[], T], timeout: float = 15.0, what: str = "") -> T:
    """Return ``check()``'s first truthy result; TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout}s: {what or check}")
        await asyncio.sleep(POLL)
