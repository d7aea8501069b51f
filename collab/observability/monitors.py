"""Background checks that keep ``/healthz``, ``/readyz`` and ``/metrics`` honest.

- :class:`LoopLagMonitor` sleeps ``interval`` and measures how late it woke
  up: the scheduling delay every socket on this loop suffers. It feeds the
  ``event_loop`` health component (failing above ``fail_after`` seconds) and
  the ``collab_event_loop_lag_seconds`` gauge, and on each tick refreshes the
  room gauge and pushes the frame tallies to Prometheus.
- :class:`StoreChecker` runs ``store.check()`` periodically, so a database
  that went away shows up in ``/readyz`` even when nobody writes.

Both run in the app's lifespan, stop when it ends, and report their own
failure (log line + health component) rather than dying silently: a dead
monitor would leave readiness green forever.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from ..stores import Store
from ..tasks import TaskSet
from .health import Health
from .metrics import Metrics
from .store_report import StoreReport

log = logging.getLogger("collab.monitors")

EVENT_LOOP = "event_loop"


class LoopLagMonitor:
    def __init__(
        self,
        health: Health,
        metrics: Metrics,
        room_count: Callable[[], int],
        *,
        interval: float,
        fail_after: float,
    ) -> None:
        self.health = health
        self.metrics = metrics
        self.room_count = room_count
        self.interval = interval
        self.fail_after = fail_after
        self.lag = 0.0
        self.last_tick = time.monotonic()
        self.samples = 0
        self.stopped = False

    async def run(self) -> None:
        self.health.set_ok(EVENT_LOOP, lag_seconds=0.0, fail_above_seconds=self.fail_after)
        loop = asyncio.get_running_loop()
        try:
            while not self.stopped:
                started = loop.time()
                await asyncio.sleep(self.interval)
                self.record(max(0.0, loop.time() - started - self.interval))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("event-loop lag monitor stopped")
            self.health.set_failing(EVENT_LOOP, f"lag monitor stopped: {type(exc).__name__}: {exc}")

    def record(self, lag: float) -> None:
        was_ok = self.health.is_ok(EVENT_LOOP)
        self.lag = lag
        self.samples += 1
        self.last_tick = time.monotonic()
        self.metrics.loop_lag.set(lag)
        self.metrics.active_rooms.set(self.room_count())
        self.metrics.flush()
        rounded = round(lag, 4)
        if lag > self.fail_after:
            self.health.set_failing(
                EVENT_LOOP,
                f"event loop lag {lag:.3f}s exceeds {self.fail_after}s",
                lag_seconds=rounded,
            )
            if was_ok:
                log.warning(
                    "event loop lag %.3fs exceeds %.3fs: readiness fails", lag, self.fail_after
                )
        else:
            self.health.set_ok(EVENT_LOOP, lag_seconds=rounded)
            if not was_ok and self.samples > 1:
                log.info("event loop lag back to %.3fs", lag)


class StoreChecker:
    def __init__(
        self, store: Store, report: StoreReport, *, interval: float, timeout: float | None = None
    ) -> None:
        self.store = store
        self.report = report
        self.interval = interval
        self.timeout = timeout if timeout is not None else max(1.0, interval)
        self.stopped = False

    async def check_once(self) -> None:
        started = time.monotonic()
        limit = self.timeout
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that lands as the check completes, and stop() would hang.
            async with asyncio.timeout(limit):
                await self.store.check()
        except Exception as exc:  # any failed check means the store is not usable
            cause = str(exc) or f"no answer within {limit}s"
            self.report.check(time.monotonic() - started, exc, cause)
            return
        self.report.check(time.monotonic() - started, None)

    async def run(self) -> None:
        try:
            while not self.stopped:
                await asyncio.sleep(self.interval)
                await self.check_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("store check loop stopped")
            self.report.failed(f"store check loop stopped: {type(exc).__name__}: {exc}")


class Monitors:
    """The monitors of one app, started and stopped by its lifespan."""

    def __init__(
        self,
        *,
        health: Health,
        metrics: Metrics,
        store: Store,
        report: StoreReport,
        room_count: Callable[[], int],
        loop_lag_interval: float,
        loop_lag_fail: float,
        store_check_interval: float,
        store_timeout: float | None = None,
    ) -> None:
        self.started_at = time.monotonic()
        self.lag = LoopLagMonitor(
            health, metrics, room_count, interval=loop_lag_interval, fail_after=loop_lag_fail
        )
        self.store = StoreChecker(
            store, report, interval=store_check_interval, timeout=store_timeout
        )
        self._tasks = TaskSet("monitors")

    def liveness(self) -> dict[str, Any]:
        """The ``/healthz`` body: from memory, so it answers as fast as the loop runs."""
        now = time.monotonic()
        return {
            "status": "ok",
            "event_loop": "ok" if self.lag.lag <= self.lag.fail_after else "failing",
            "event_loop_lag_seconds": round(self.lag.lag, 4),
            "lag_sampled_seconds_ago": round(now - self.lag.last_tick, 3),
            "uptime_seconds": round(now - self.started_at, 3),
        }

    async def start(self) -> None:
        self.lag.stopped = self.store.stopped = False
        self._tasks.spawn(self.lag.run(), name="collab-loop-lag")
        self._tasks.spawn(self.store.run(), name="collab-store-check")

    async def stop(self) -> None:
        self.lag.stopped = self.store.stopped = True
        await self._tasks.aclose()
