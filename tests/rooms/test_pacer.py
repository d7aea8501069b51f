"""The fan-out pacer (collab.rooms.pacer), on a fake clock: no event loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from collab.rooms.pacer import BURST, Pacer

WINDOW = 0.005


class Clock:
    """Enough of an event loop for the pacer: time, call_soon, call_at."""

    def __init__(self) -> None:
        self.now = 100.0
        self.calls: list[tuple[float, Callable[..., Any], tuple[Any, ...]]] = []

    def time(self) -> float:
        return self.now

    def call_soon(self, fn: Callable[..., Any], *args: Any) -> None:
        self.calls.append((self.now, fn, args))

    def call_at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        self.calls.append((when, fn, args))

    def run_next(self) -> float:
        """Run the one pending call at its time; return how long it waited."""
        (when, fn, args) = self.calls.pop(0)
        waited = when - self.now
        self.now = max(self.now, when)
        fn(*args)
        return waited


def pacer(frame_rate: float = 0.0) -> tuple[Pacer, Clock]:
    clock = Clock()
    return Pacer(clock, WINDOW, frame_rate), clock  # type: ignore[arg-type]


def test_after_a_quiet_spell_a_fan_out_goes_on_the_next_turn() -> None:
    p, clock = pacer()
    p(lambda: 0)
    assert clock.run_next() == 0.0


def test_a_flood_is_paced_at_the_window_after_the_burst() -> None:
    p, clock = pacer()
    waits = []
    for _ in range(int(BURST) + 3):  # back to back, as a flood schedules them
        p(lambda: 0)
        waits.append(clock.run_next())
    assert waits[: int(BURST)] == [0.0] * int(BURST)
    assert waits[int(BURST) :] == pytest.approx([WINDOW] * 3)


def test_paced_typing_never_waits() -> None:
    """Twenty edits a second, each fan-out to 200 peers: never held."""
    p, clock = pacer(frame_rate=10_000)
    for _ in range(50):
        p(lambda: 0)  # nothing merged: a lone update (weight 0)
        assert clock.run_next() == 0.0
        clock.now += 0.05


def test_a_merged_flood_into_a_big_room_is_spaced_by_the_frame_rate() -> None:
    p, clock = pacer(frame_rate=10_000)
    waits = []
    for _ in range(12):
        p(lambda: 200)  # each fan-out merged several updates for 200 peers
        waits.append(clock.run_next())
    # 200 frames at 10,000 frames/s: 20 ms apart once the burst is spent.
    assert waits[-3:] == pytest.approx([0.02] * 3)


def test_credit_comes_back_after_the_flood() -> None:
    p, clock = pacer(frame_rate=10_000)
    for _ in range(12):
        p(lambda: 200)
        clock.run_next()
    clock.now += 1.0  # quiet
    p(lambda: 0)
    assert clock.run_next() == 0.0
