"""When a room fans out the updates it has gathered."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

# Fan-outs a room may make back to back after a quiet spell before the pace
# applies: paced typing (a few edits a second from each of a few writers)
# then never waits for a window, and a flood is merged from its fifth frame.
BURST = 4.0


class Pacer:
    """A room's ``defer``: when to fan out the updates gathered so far.

    A token bucket over fan-outs. After a quiet spell an update goes out on
    the next event-loop turn (merging whatever that turn brought). While
    updates keep coming, a room fans out at most once per ``window``; and
    once a flood makes it merge, a big room more rarely: such a fan-out costs
    ``frames / frame_rate`` seconds of credit when that is longer, so a flood
    into a room of 200 peers leaves as ~38 merged frames per second per peer
    rather than 200 (the server's and every receiver's cost is per frame;
    Hocuspocus 4 merges the same way). The room's ``flush`` returns those
    frames (0 when it merged nothing): paced typing and presence, however
    many peers, are never held for the longer spacing.
    """

    __slots__ = ("_cost", "_credit", "_frame_rate", "_loop", "_stamp", "_window")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, window: float, frame_rate: float = 0.0
    ) -> None:
        self._loop = loop
        self._window = window
        self._frame_rate = frame_rate
        self._cost = window  # what the next fan-out will cost, from the last one
        self._credit = BURST * window
        self._stamp = loop.time()

    def _refill(self, now: float) -> float:
        credit = min(BURST * self._cost, self._credit + (now - self._stamp))
        self._credit, self._stamp = credit, now
        return credit

    def __call__(self, flush: Callable[[], object]) -> None:
        now = self._loop.time()
        short = self._cost - self._refill(now)
        if short <= 0:
            self._loop.call_soon(self._run, flush)
        else:
            self._loop.call_at(now + short, self._run, flush)

    def _run(self, flush: Callable[[], object]) -> None:
        self._refill(self._loop.time())
        sent = flush()
        frames = sent if isinstance(sent, int) else 0
        cost = self._window
        if self._frame_rate and frames / self._frame_rate > cost:
            cost = frames / self._frame_rate
        self._cost = cost
        self._credit -= cost
