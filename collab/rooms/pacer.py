"""When a room fans out the updates it has gathered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Pacer:
    """A room's ``defer``: when to fan out the updates gathered so far.

    After a quiet spell, on the next event-loop turn (merging whatever the
    turn brought). While updates keep coming, at most once per ``window``:
    a flood from one writer then leaves as a few merged frames per peer, not
    one frame per keystroke, which is what the server's CPU and every
    receiver's pay for (Hocuspocus 4 has the same idea as its flushDelay).
    """

    __slots__ = ("_last", "_loop", "_window")

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float) -> None:
        self._loop = loop
        self._window = window
        self._last = -window

    def __call__(self, flush: Callable[[], None]) -> None:
        due = self._last + self._window
        if self._loop.time() >= due:
            self._loop.call_soon(self._run, flush)
        else:
            self._loop.call_at(due, self._run, flush)

    def _run(self, flush: Callable[[], None]) -> None:
        self._last = self._loop.time()
        flush()
