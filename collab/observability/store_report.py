"""One place where every store result lands, feeding health and metrics.

Writes (the batched writer) and checks (the periodic round trip) both report
here. A check that succeeds while writes fail — a full disk still answers
``SELECT 1`` — must not turn the ``store`` component green, so a passing
check only clears a failure that a check reported.
"""

from __future__ import annotations

import logging

from .health import Health
from .metrics import Metrics

log = logging.getLogger("collab.store")

STORE = "store"


class StoreReport:
    def __init__(self, health: Health, metrics: Metrics, backend: str) -> None:
        self._health = health
        self._metrics = metrics
        self.backend = backend
        self.write_failing = False
        health.register(STORE)

    def opened(self) -> None:
        self._health.set_ok(STORE, backend=self.backend)

    def failed(self, error: str) -> None:
        """The store could not be opened (or a check loop died)."""
        self._health.set_failing(STORE, error, backend=self.backend)

    def write(self, room: str, seconds: float, exc: BaseException | None) -> None:
        """A batched write ended (``exc`` is None when it succeeded)."""
        self.write_failing = exc is not None
        self._metrics.store_result(seconds, exc is not None)
        if exc is None:
            self._health.set_ok(STORE)
        else:
            self._health.set_failing(STORE, f"{type(exc).__name__}: {exc}")

    def check(self, seconds: float, exc: BaseException | None, cause: str = "") -> None:
        """A readiness round trip ended; ``cause`` explains a failure."""
        self._metrics.store_result(seconds, exc is not None, op="check")
        if exc is not None:
            was_ok = self._health.is_ok(STORE)
            self._health.set_failing(STORE, f"{type(exc).__name__}: {cause}", backend=self.backend)
            if was_ok:
                log.error("store check failed: %s: %s", type(exc).__name__, cause)
        elif not self.write_failing:
            if not self._health.is_ok(STORE):
                log.info("store check ok again")
            self._health.set_ok(STORE, backend=self.backend)
