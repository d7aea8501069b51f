"""Helpers for the observability tests: scrape /metrics, read JSON logs, wait."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx
from prometheus_client.parser import text_string_to_metric_families

from collab import Settings

T = TypeVar("T")

Samples = list[tuple[str, dict[str, str], float]]


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "store_url": "memory://",
        "room_grace": 0.2,
        "flush_debounce": 0.05,
        "flush_max_wait": 0.2,
        "loop_lag_interval": 0.05,
        "store_check_interval": 0.1,
    }
    base.update(kw)
    return Settings(**base)


def parse_metrics(text: str) -> Samples:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


async def scrape(url: str, path: str = "/metrics") -> Samples:
    # A fresh connection per scrape: with several workers, any may answer.
    async with httpx.AsyncClient(timeout=5, headers={"Connection": "close"}) as client:
        response = await client.get(url + path)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse_metrics(response.text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        v
        for n, lab, v in samples
        if n == name and all(lab.get(k) == want for k, want in labels.items())
    )


def by_label(samples: Samples, name: str, label: str, **labels: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for n, lab, v in samples:
        if n == name and all(lab.get(k) == want for k, want in labels.items()) and v:
            out[lab[label]] = out.get(lab[label], 0.0) + v
    return out


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    timeout: float = 10.0,
    interval: float = 0.05,
) -> T:
    """Re-run ``probe`` until ``check`` holds on its result; return that result.

    For state owned by another process (its /metrics, its /readyz) there is
    no event to await; the deadline bounds the wait and the last result is in
    the failure message.
    """
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if check(result):
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s; last: {result!r}")
        await asyncio.sleep(interval)


async def get_json(url: str) -> tuple[int, Any]:
    async with httpx.AsyncClient(timeout=5, headers={"Connection": "close"}) as client:
        response = await client.get(url)
    return response.status_code, response.json()


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line must be one JSON object (COLLAB_LOG_FORMAT=json)."""
    records = []
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"log line is not JSON: {line!r}") from exc
        assert isinstance(record, dict), line
        records.append(record)
    return records


class FlakyStore:
    """A memory store whose operations fail on demand (a database that went away)."""

    name = "flaky"

    def __init__(self) -> None:
        from collab.stores.memory import MemoryStore

        self.inner = MemoryStore()
        self.fail_check: BaseException | None = None
        self.fail_load: BaseException | None = None
        self.fail_append: BaseException | None = None
        self.checks = 0

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    async def load(self, room: str) -> bytes | None:
        if self.fail_load is not None:
            raise self.fail_load
        return await self.inner.load(room)

    async def append(self, room: str, update: bytes) -> int:
        if self.fail_append is not None:
            raise self.fail_append
        return await self.inner.append(room, update)

    async def compact(self, room: str) -> None:
        await self.inner.compact(room)

    async def check(self) -> None:
        self.checks += 1
        if self.fail_check is not None:
            raise self.fail_check
