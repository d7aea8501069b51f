#!/usr/bin/env python3
"""Where collab's CPU goes while it fans out: py-spy over scenario A.

    .venv/bin/python bench/profiles/fanout_cpu.py

Starts `collab serve` on CPU 0 (SQLite store, as in the benchmark), attaches
py-spy (``--gil``: only time spent holding the GIL, so the event loop's idle
waits do not count), drives it with the benchmark's load generator on CPU 1
(1 room, 50 clients, 5 writers at 20 edits/s, 120 edits each), and prints
the functions by own time and by inclusive time. Also times the pure-Python
part of one delivery (room fan-out to a socket whose write does nothing), so
the syscall's share can be told from the interpreter's.
"""

from __future__ import annotations

import asyncio
import collections
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1]
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
PY = REPO / ".venv" / "bin" / "python"
PORT = 18901
SCENARIO_A = {
    "rooms": 1,
    "clientsPerRoom": 50,
    "writersPerRoom": 5,
    "rate": 20,
    "edits": 120,
    "awareness": True,
    "kind": "fanout",
    "proto": "yws",
    "urls": [f"ws://127.0.0.1:{PORT}/"],
    "serverPids": [],
    "roomPrefix": "prof",
    "trace": {},
}


def aggregate(raw: Path, rows: int = 20) -> None:
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        if not line.strip():
            continue
        stack, n = line.rsplit(" ", 1)
        total += int(n)
        names = []
        for frame in stack.split(";"):
            m = re.match(r"(.*) \((.*):\d+\)", frame)
            names.append(f"{m.group(1)} ({Path(m.group(2)).name})" if m else frame)
        own[names[-1]] += int(n)
        for name in set(names):
            incl[name] += int(n)
    print(f"{total} samples with the GIL held")
    for title, table in (("own time", own), ("inclusive", incl)):
        print(f"-- {title}")
        for name, n in table.most_common(rows):
            print(f"{100 * n / total:5.1f}%  {name}")


def python_cost_per_delivery() -> float:
    """Microseconds of interpreter work per delivery, the socket write excluded."""
    from websockets.protocol import State

    from collab.rooms.room import Room
    from collab.transport.connection import Connection
    from collab.transport.uvicorn import DirectWriter
    from collab.wire.labels import Label
    from collab.ywebsocket.codec import YPeer

    class NullTransport:
        def write(self, data: bytes) -> None: ...
        def is_closing(self) -> bool:
            return False

    class Proto:  # what DirectWriter reads of uvicorn's protocol
        def __init__(self) -> None:
            self.conn = type("C", (), {"state": State.OPEN, "extensions": []})()
            self.close_sent = self.disconnected = False
            self.writable = asyncio.Event()
            self.writable.set()
            self.transport = NullTransport()

    counts: dict[str, int] = {}

    def tally(label: str, size: int) -> None:
        counts[label] = counts.get(label, 0) + size

    async def run() -> float:
        room = Room("r")
        for i in range(50):
            conn = Connection(
                f"c{i}",
                None,
                max_frames=1024,
                max_bytes=1 << 24,  # type: ignore[arg-type]
                direct=DirectWriter(Proto()),  # type: ignore[arg-type]
                on_sent=tally,
            )  # stands in for the metrics tally
            peer = YPeer(conn, False)
            room.peers[peer.id] = peer
        rounds = 2000
        start = time.perf_counter()
        for _ in range(rounds):
            room._broadcast(lambda c: c.update("r", b"x" * 30), Label.UPDATE, "c0")
        return (time.perf_counter() - start) / rounds / 49 * 1e6

    return asyncio.run(run())


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"COLLAB_STORE_URL": f"sqlite:///{tmp}/b.sqlite3", "PATH": "/usr/bin:/bin"}
        server = subprocess.Popen(
            ["taskset", "-c", "0", str(PY), "-m", "collab", "serve", "--port", str(PORT)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            time.sleep(2)  # start-up; the profile begins after it
            raw = Path(tmp) / "profile.txt"
            spy = subprocess.Popen(
                [
                    str(PY.parent / "py-spy"),
                    "record",
                    "--pid",
                    str(server.pid),
                    "--gil",
                    "-r",
                    "1000",
                    "-d",
                    "15",
                    "-f",
                    "raw",
                    "-o",
                    str(raw),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            out = subprocess.run(
                ["taskset", "-c", "1", "node", "loadgen.mjs", "run", json.dumps(SCENARIO_A)],
                cwd=BENCH,
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            ).stdout
            result = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
            print(
                f"scenario A under py-spy: latency {result['latency_ms']}, "
                f"{result['deliveries']} deliveries"
            )
            spy.wait(timeout=60)
            aggregate(raw)
        finally:
            server.terminate()
            server.wait(timeout=20)
    print(f"pure-Python cost of one delivery (write excluded): {python_cost_per_delivery():.2f} µs")


if __name__ == "__main__":
    main()
