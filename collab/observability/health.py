"""Component health for ``/readyz``: each dependency reports here.

A component is ``ok`` or ``failing``, with the current error (secrets
stripped), since when it has been in that state, and the last error it ever
reported (so a flap that healed itself is still explained). Background loops
and the code that talks to a dependency update their component; the readiness
endpoint only reads this table, so a check never blocks on a dead dependency.

Reporting, for any component (the store, the event loop, the Redis backplane)::

    health.set_ok("redis", tls=True, auth="ok")
    health.set_failing("redis", f"{type(exc).__name__}: {exc}", tls=True, auth="failed")

``detail`` keyword arguments are merged into the component's JSON entry; keep
them small and free of secrets (error text is redacted, details are not).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .redact import Redactor

STATUS_OK = "ok"
STATUS_FAILING = "failing"
STATUS_DRAINING = "draining"


def _ts(t: float) -> float:
    return round(t, 3)


@dataclass
class Component:
    name: str
    ok: bool = False
    error: str = ""
    since: float = field(default_factory=time.time)
    last_error: str = ""
    last_error_at: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": STATUS_OK if self.ok else STATUS_FAILING,
            "since": _ts(self.since),
        }
        if not self.ok:
            out["error"] = self.error or "no result yet"
        if self.last_error:
            out["last_error"] = self.last_error
            out["last_error_at"] = _ts(self.last_error_at)
        out.update(self.detail)
        return out


class Health:
    """The table of components; ``ready`` when every one is ok and not draining."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.components: dict[str, Component] = {}
        self.draining = False
        # Scrubs the deployment's secrets (passwords in the settings) from every error.
        self._redact = redactor if redactor is not None else Redactor()

    def begin_drain(self) -> None:
        """Not ready from now on, whatever the components say (SIGTERM)."""
        self.draining = True

    def register(self, name: str) -> Component:
        """Declare a component (failing until its first result)."""
        return self.components.setdefault(name, Component(name))

    def set_ok(self, name: str, **detail: Any) -> None:
        c = self.register(name)
        if not c.ok:
            c.ok, c.since = True, time.time()
        c.error = ""
        c.detail.update(detail)

    def set_failing(self, name: str, error: str, **detail: Any) -> None:
        c = self.register(name)
        now = time.time()
        if c.ok or not c.error:
            c.since = now
        c.ok = False
        c.error = c.last_error = self._redact(error) or "failing"
        c.last_error_at = now
        c.detail.update(detail)

    def set_pending(self, name: str, note: str, **detail: Any) -> None:
        """Not ready yet, and not an error either (e.g. "connecting"): failing
        with ``note``, but ``last_error`` keeps only real failures."""
        c = self.register(name)
        if c.ok:
            c.since = time.time()
        c.ok, c.error = False, note
        c.detail.update(detail)

    def is_ok(self, name: str) -> bool:
        c = self.components.get(name)
        return c is not None and c.ok

    @property
    def ready(self) -> bool:
        return not self.draining and all(c.ok for c in self.components.values())

    def report(self) -> dict[str, Any]:
        if self.draining:
            status = STATUS_DRAINING
        else:
            status = STATUS_OK if self.ready else STATUS_FAILING
        return {
            "status": status,
            "components": {n: c.as_dict() for n, c in sorted(self.components.items())},
        }
