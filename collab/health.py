"""Component health for ``/readyz``: each dependency reports here.

A component is ``ok`` or ``failing`` with the last error (secrets stripped)
and since when. Background loops update their component; the readiness
endpoint only reads this table, so a check never blocks on a dead dependency.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any

_SECRET_IN_URL = re.compile(r"(\w+://)([^:/@\s]*):([^@\s]*)@")


def redact(text: str) -> str:
    """Strip passwords from URLs in an error message."""
    return _SECRET_IN_URL.sub(r"\1\2:***@", text)


@dataclass
class Component:
    name: str
    ok: bool = False
    error: str = ""
    since: float = field(default_factory=time.time)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": "ok" if self.ok else "failing",
                               "since": round(self.since, 3)}
        if self.error:
            out["error"] = self.error
        out.update(self.detail)
        return out


class Health:
    def __init__(self) -> None:
        self.components: dict[str, Component] = {}
        self.draining = False

    def register(self, name: str) -> Component:
        return self.components.setdefault(name, Component(name))

    def set_ok(self, name: str, **detail: Any) -> None:
        c = self.register(name)
        if not c.ok:
            c.ok, c.since = True, time.time()
        c.error = ""
        c.detail.update(detail)

    def set_failing(self, name: str, error: str, **detail: Any) -> None:
        c = self.register(name)
        if c.ok or not c.error:
            c.since = time.time()
        c.ok = False
        c.error = redact(error)
        c.detail.update(detail)

    @property
    def ready(self) -> bool:
        return not self.draining and all(c.ok for c in self.components.values())

    def report(self) -> dict[str, Any]:
        return {
            "status": "draining" if self.draining else ("ok" if self.ready else "failing"),
            "components": {n: c.as_dict() for n, c in sorted(self.components.items())},
        }
