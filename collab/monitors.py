"""Background checks that keep ``/healthz``, ``/readyz`` and ``/metrics`` honest.

- :class:`LoopLagMonitor` sleeps ``interval`` and measures how late it woke
  up: the scheduling delay every socket on this loop suffers. It feeds the
  ``event_loop`` health component (failing above ``fail_after`` seconds) and
  the ``collab_event_loop_lag_seconds`` gauge, and on each tick refreshes the
  room gauge and pushes the frame tallies to Prometheus.
- :class:`StoreChecker` runs ``store.check()`` periodically, so a database
  that went away shows up in ``/readyz`` even when nobody writes.

Both run in the app's lifespan (:func:`running`), stop when it ends, and
report their own failure (log line + health component) rather than dying
silently: a dead monitor would leave readiness green forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from .health import Health, secrets_of

if TYPE_CHECKING:
    from .server import CollabServer

log = logging.getLogger("collab.monitors")

EVENT_LOOP = "event_loop"
STORE = "store"


class LoopLagMonitor:
    def __init__(self, server: CollabServer, *, interval: float, fail_after: float) -> None:
        self.server = server
        self.health: Health = server.health
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
        metrics = self.server.metrics
        metrics.loop_lag.set(lag)
        metrics.active_rooms.set(len(self.server.rooms))
        metrics.flush()
        rounded = round(lag, 4)
        if lag > self.fail_after:
            self.health.set_failing(
                EVENT_LOOP, f"event loop lag {lag:.3f}s exceeds {self.fail_after}s",
                lag_seconds=rounded)
            if was_ok:
                log.warning("event loop lag %.3fs exceeds %.3fs: readiness fails",
                            lag, self.fail_after)
        else:
            self.health.set_ok(EVENT_LOOP, lag_seconds=rounded)
            if not was_ok and self.samples > 1:
                log.info("event loop lag back to %.3fs", lag)


class StoreChecker:
    def __init__(self, server: CollabServer, *, interval: float) -> None:
        self.server = server
        self.interval = interval
        # A check that succeeds while writes fail (a full disk answers SELECT 1)
        # must not turn the component green: writes report here too.
        self.write_failing = False
        self.stopped = False
        server.on_store_result.append(self._on_write)

    def _on_write(self, room: str, seconds: float, exc: BaseException | None) -> None:
        self.write_failing = exc is not None

    async def check_once(self) -> None:
        server = self.server
        store = server.store
        started = time.monotonic()
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that lands as the check completes, and stop() would hang.
            async with asyncio.timeout(max(1.0, self.interval)):
                await store.check()
        except Exception as exc:  # any failed check means the store is not usable
            seconds = time.monotonic() - started
            server.metrics.store_result(seconds, True, op="check")
            cause = str(exc) or f"no answer within {max(1.0, self.interval)}s"
            was_ok = server.health.is_ok(STORE)
            server.health.set_failing(STORE, f"{type(exc).__name__}: {cause}",
                                      backend=store.name)
            if was_ok:
                log.error("store check failed: %s: %s", type(exc).__name__, cause)
            return
        server.metrics.store_result(time.monotonic() - started, False, op="check")
        if not self.write_failing:
            if not server.health.is_ok(STORE):
                log.info("store check ok again")
            server.health.set_ok(STORE, backend=store.name)

    async def run(self) -> None:
        try:
            while not self.stopped:
                await asyncio.sleep(self.interval)
                await self.check_once()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("store check loop stopped")
            self.server.health.set_failing(
                STORE, f"store check loop stopped: {type(exc).__name__}: {exc}")


class Monitors:
    """The monitors of one app; :meth:`running` runs them for the lifespan."""

    def __init__(self, server: CollabServer) -> None:
        s = server.settings
        self.started_at = time.monotonic()
        server.health.secrets |= secrets_of(s.redis_password, s.redis_url, s.store_url)
        self.lag = LoopLagMonitor(server, interval=s.loop_lag_interval,
                                  fail_after=s.loop_lag_fail)
        self.store = StoreChecker(server, interval=s.store_check_interval)
        self._tasks: list[asyncio.Task[None]] = []

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
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.lag.run(), name="collab-loop-lag"),
                       loop.create_task(self.store.run(), name="collab-store-check")]

    async def stop(self) -> None:
        self.lag.stopped = self.store.stopped = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks)  # never raises the tasks' CancelledError
        self._tasks = []

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()
