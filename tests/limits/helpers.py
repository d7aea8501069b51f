"""What every limits test needs: the server's RSS, its metrics, raw sockets."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import websockets
from pycrdt import Doc, Text

from collab.client import YClient
from tests.support.servers import CollabProcess
from tests.support.waiting import wait_until

MiB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def settled_rss(srv: CollabProcess, rounds: int = 3) -> int:
    """RSS after a few readiness round trips (the server has handled what
    came before), the lowest of them: a sample taken mid-free is noise."""
    samples = []
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(rounds):
            await http.get(f"{srv.url}/healthz")
            samples.append(rss(srv.proc.pid or 0))
    return min(samples)


async def metric(srv: CollabProcess, name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include ``labels``."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{srv.url}/metrics")).text
    total = 0.0
    for line in text.splitlines():
        m = re.match(rf"^{re.escape(name)}(?:\{{(.*)\}})? (\S+)$", line)
        if not m:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(2))
    return total


def inserting(text: str, client_id: int | None = None) -> bytes:
    d: Doc[Any] = Doc(client_id=client_id) if client_id is not None else Doc()
    d.get("text", type=Text).insert(0, text)
    return d.get_update()


async def close_of(ws: Any, timeout: float = 20) -> tuple[int, str]:
    """Read until the server's close frame; its code and reason."""
    async with asyncio.timeout(timeout):
        try:
            while True:
                await ws.recv()
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason


@asynccontextmanager
async def pair(url: str) -> AsyncIterator[tuple[YClient, YClient]]:
    """Two synced clients of one room: the bystanders of every attack."""
    async with YClient(url, reconnect=False) as a, YClient(url, reconnect=False) as b:
        yield a, b


async def still_converging(a: YClient, b: YClient, tag: str, timeout: float = 15) -> None:
    """Each client types; each sees the other's edit, and both agree."""
    a.text().insert(len(a.text()), f"<a:{tag}>")
    b.text().insert(len(b.text()), f"<b:{tag}>")

    def both(c: YClient) -> bool:
        text = str(c.text())
        return f"<a:{tag}>" in text and f"<b:{tag}>" in text

    try:
        await wait_until(
            lambda: both(a) and both(b) and str(a.text()) == str(b.text()),
            timeout,
            f"both clients have {tag!r}",
        )
    except TimeoutError:
        raise AssertionError(
            f"not converged on {tag!r}: a={str(a.text())[-200:]!r} "
            f"b={str(b.text())[-200:]!r} closed={a.close_code, b.close_code}"
        ) from None
