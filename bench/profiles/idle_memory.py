#!/usr/bin/env python3
"""Where an idle connection's memory goes: collab against the floor of its stack.

    .venv/bin/python bench/profiles/idle_memory.py            # RSS per idle socket
    .venv/bin/python bench/profiles/idle_memory.py --trace    # plus a tracemalloc top list

Serves, in this process and under the uvicorn configuration `collab serve`
uses, either collab or a bare ASGI app that accepts a socket, sends one
frame and waits (the least any ASGI WebSocket app can do), then opens N idle
sockets from a child process and reports the RSS growth per socket. The bare
app's figure is the floor of uvicorn + websockets for an ASGI app; collab
under `collab serve` is below it, since its own protocol serves the sockets
(collab/transport/fast.py, bench/PROFILE.md).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import logging
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

PORT = 18777
WARM = 10


async def bare_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "bytes": b"\x00\x00\x01\x00"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def rss_kib() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def serve_and_measure(kind: str, count: int, trace: bool) -> None:
    import uvicorn

    from collab import Settings, create_app
    from collab.cli import uvicorn_config

    # The client is killed at the end: its 1006 closes are expected here.
    logging.getLogger("collab").setLevel(logging.ERROR)
    # The per-client throttles off, as in bench/run.py: every socket here is from 127.0.0.1.
    settings = Settings(store_url="memory://", port=PORT, connect_rate=0, frame_rate=0)
    config = uvicorn_config(settings)
    config.app = create_app(settings) if kind == "collab" else bare_app
    config.log_level = "warning"
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:
            await asyncio.sleep(0.02)  # uvicorn has no start event
    client = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", str(count), stdout=subprocess.PIPE
    )
    assert client.stdout is not None
    async with asyncio.timeout(120):
        await client.stdout.readline()  # the warm-up sockets are open
        gc.collect()
        before, snap = rss_kib(), tracemalloc.take_snapshot() if trace else None
        await client.stdout.readline()  # all sockets are open
    gc.collect()
    after = rss_kib()
    print(f"{kind:7s} RSS per idle socket: {(after - before) / count:5.1f} KiB ({count} sockets)")
    if trace and snap is not None:
        top(tracemalloc.take_snapshot().compare_to(snap, "traceback"), count)
    client.kill()
    await client.wait()
    server.should_exit = True
    await task


def top(stats: list[tracemalloc.StatisticDiff], count: int) -> None:
    """Group growth by the innermost frame of collab's, else the innermost frame."""
    groups: collections.Counter[str] = collections.Counter()
    for stat in stats:
        frames = list(stat.traceback)
        ours = [f for f in frames if "/collab/" in f.filename and "/bench/" not in f.filename]
        frame = ours[-1] if ours else frames[-1]
        name = frame.filename.split("site-packages/")[-1].replace(str(REPO) + "/", "")
        groups[f"{name}:{frame.lineno}"] += stat.size_diff
    print(
        f"  traced growth per socket: {sum(groups.values()) / count:.0f} B "
        "(tracemalloc's own overhead included)"
    )
    for where, size in groups.most_common(20):
        print(f"  {size / count:7.0f} B  {where}")


async def client(count: int) -> None:
    import websockets

    sockets = []
    for i in range(WARM + count):
        ws = await websockets.connect(
            f"ws://127.0.0.1:{PORT}/idle", ping_interval=None, compression=None
        )
        await ws.recv()
        sockets.append(ws)
        if i + 1 == WARM:
            print("warm", flush=True)
    print("open", flush=True)
    await asyncio.sleep(3600)  # held open until the parent kills us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--trace", action="store_true", help="also a tracemalloc top list")
    parser.add_argument("--client", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client is not None:
        asyncio.run(client(args.client))
        return
    for kind in ("bare", "collab"):
        # A fresh process each, so one's heap does not flatter the other.
        argv = [sys.executable, __file__, "--run", kind, str(args.count), str(int(args.trace))]
        subprocess.run(argv, check=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--run":
        if sys.argv[4] == "1":
            tracemalloc.start(25)
        asyncio.run(serve_and_measure(sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"))
    else:
        main()
