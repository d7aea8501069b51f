"""Connection limits, refused before the upgrade: the connect rate per client
(429 + Retry-After; X-Forwarded-For counts only through trusted proxies), the
connections per process (503); and per socket, the frame rate (1008) and the
pings answered."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest
import websockets

from collab.wire import awareness as aw
from collab.wire import ywebsocket as p
from tests.limits.helpers import MiB, close_of, metric, pair, settled_rss, still_converging
from tests.observability.rawws import OP_PING, OP_PONG, RawWebSocket
from tests.support.servers import run_collab

pytestmark = pytest.mark.anyio

BASE = {"COLLAB_STORE_URL": "memory://", "COLLAB_LOG_LEVEL": "warning"}


async def handshake(port: int, xff: str | None = None) -> tuple[int, dict[str, str]]:
    """One upgrade request on a fresh TCP connection: the status and headers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        extra = f"X-Forwarded-For: {xff}\r\n" if xff else ""
        writer.write(
            (
                f"GET /storm HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{extra}\r\n"
            ).encode()
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
        await writer.wait_closed()
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}


async def storm(
    port: int, xff: list[str | None], per_second: int = 500
) -> list[tuple[int, dict[str, str]]]:
    """``len(xff)`` connects at ``per_second``, 50 at a time."""
    results: list[tuple[int, dict[str, str]]] = []
    started = time.monotonic()
    for i in range(0, len(xff), 50):
        results += await asyncio.gather(*(handshake(port, x) for x in xff[i : i + 50]))
        ahead = started + (i + 50) / per_second - time.monotonic()
        if ahead > 0:
            await asyncio.sleep(ahead)  # the pace of the attack itself, not a wait for state
    return results


def count_pongs(raw: RawWebSocket) -> int:
    """Pongs read until the server's close frame."""
    pongs = 0
    while True:
        got = raw.read_frame()
        if got is None or got[0] == 0x8:
            return pongs
        pongs += got[0] == OP_PONG


def spoofed() -> str:
    return ".".join(str(random.randint(1, 254)) for _ in range(4))


async def test_500_connects_per_second_from_one_address_spoofed_or_not(tmp_path: Path) -> None:
    env = {**BASE, "COLLAB_CONNECT_RATE": "120", "COLLAB_CONNECT_BURST": "20"}
    async with run_collab(tmp_path, env=env) as srv:
        async with pair(f"{srv.ws_url}/storm") as (a, b):
            baseline = await settled_rss(srv)
            for attempt, xff in enumerate(([None] * 500, [spoofed() for _ in range(500)])):
                results = await storm(srv.port, xff)
                statuses = Counter(status for status, _ in results)
                assert set(statuses) <= {101, 429} and statuses[429] >= 470, statuses
                retry = [int(h["retry-after"]) for s, h in results if s == 429]
                assert min(retry) >= 1
                await still_converging(a, b, f"storm{attempt}")
            grown = await settled_rss(srv) - baseline
            assert grown < 16 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
        assert await metric(srv, "collab_handshakes_refused_total", reason="connect_rate") >= 940
        assert "ERROR" not in srv.log_text()  # a refusal is one INFO line, not an error


async def test_x_forwarded_for_counts_through_a_trusted_proxy_only(tmp_path: Path) -> None:
    # The test plays a proxy on 127.0.0.1 that appends the address it saw.
    env = {
        **BASE,
        "COLLAB_CONNECT_RATE": "60",
        "COLLAB_CONNECT_BURST": "5",
        "COLLAB_TRUSTED_PROXIES": "127.0.0.1/32",
    }
    async with run_collab(tmp_path, env=env) as srv:
        attacker = [f"{spoofed()}, 198.51.100.66" for _ in range(100)]
        statuses = Counter(s for s, _ in await storm(srv.port, attacker))
        assert statuses == Counter({101: 5, 429: 95})
        # Another client behind the same proxy is not throttled by them.
        assert (await handshake(srv.port, "198.51.100.7"))[0] == 101


async def test_connections_past_the_process_limit_get_503(tmp_path: Path) -> None:
    env = {**BASE, "COLLAB_MAX_CONNECTIONS": "6", "COLLAB_CONNECT_RATE": "0"}
    async with run_collab(tmp_path, env=env) as srv:
        async with pair(f"{srv.ws_url}/full") as (a, b):
            held = [await websockets.connect(f"{srv.ws_url}/other") for _ in range(4)]
            status, headers = await handshake(srv.port)
            assert status == 503 and "retry-after" in headers
            await still_converging(a, b, "full")
            await held.pop().close()
            assert (await handshake(srv.port))[0] == 101
            for ws in held:
                await ws.close()
        assert await metric(srv, "collab_handshakes_refused_total", reason="max_connections") == 1


async def test_a_frame_flood_is_1008_and_pings_are_answered_at_a_rate(tmp_path: Path) -> None:
    env = {
        **BASE,
        "COLLAB_FRAME_RATE": "100",
        "COLLAB_FRAME_BURST": "200",
        "COLLAB_PING_ANSWER_RATE": "2",
    }
    async with run_collab(tmp_path, env=env) as srv:
        url = f"{srv.ws_url}/rate"
        async with pair(url) as (a, b):
            async with websockets.connect(url, max_size=None) as ws:
                await ws.recv()
                cursor = p.encode_awareness(aw.encode_update([aw.Entry(31, 1, "{}")]))
                try:
                    for _ in range(2000):
                        await ws.send(cursor)
                except websockets.ConnectionClosed:
                    pass
                code, reason = await close_of(ws)
            assert code == 1008 and "frames per second" in reason
            # 1,000 pings from a client that reads nothing meanwhile: at most
            # the burst and the rate's share are answered.
            raw = await asyncio.to_thread(RawWebSocket, srv.port, "/rate")
            try:
                await asyncio.to_thread(
                    lambda: [raw.send_frame(OP_PING, b"p" * 100) for _ in range(1000)]
                )
                await still_converging(a, b, "pings")
                raw.send_close_without_status()
                pongs = await asyncio.to_thread(count_pongs, raw)
            finally:
                raw.close()
            assert 1 <= pongs <= 30, pongs
        assert await metric(srv, "collab_frames_rejected_total", reason="frame_rate") == 1
