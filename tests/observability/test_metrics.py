"""/metrics counts exactly what happened, with one worker and with several."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import websockets
from pycrdt import Doc, Text

from collab.observability.metrics import Metrics, multiproc_dir
from collab.wire import awareness as aw
from collab.wire import ywebsocket as p
from tests.support.servers import CollabProcess, run_collab

from .common import by_label, eventually, get_json, json_lines, scrape, value
from .rawws import RawWebSocket

pytestmark = pytest.mark.anyio

HOOKS = "tests.observability.hooks_fixture:hooks"
ENV = {
    "COLLAB_STORE_URL": "memory://",
    "COLLAB_HOOKS": HOOKS,
    "COLLAB_LOG_FORMAT": "json",
    "COLLAB_ROOM_GRACE": "0.2",
    "COLLAB_LOOP_LAG_INTERVAL": "0.1",
    "COLLAB_STORE_CHECK_INTERVAL": "0.1",
}


def update_inserting(text: str) -> bytes:
    doc: Doc[Any] = Doc()
    doc.get("text", type=Text).insert(0, text)
    return doc.get_update()


def awareness_frame(client_id: int, state: Any) -> bytes:
    return p.encode_awareness(aw.encode_update([aw.Entry(client_id, 1, json.dumps(state))]))


class Tally:
    """Frames by type as one side saw them: [frames, bytes] per type."""

    def __init__(self) -> None:
        self.counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])

    def add(self, frame: bytes) -> str:
        kind = p.frame_kind(frame)
        self.counts[kind][0] += 1
        self.counts[kind][1] += len(frame)
        return kind

    def frames(self) -> dict[str, float]:
        return {k: float(v[0]) for k, v in self.counts.items() if v[0]}

    def bytes(self) -> dict[str, float]:
        return {k: float(v[1]) for k, v in self.counts.items() if v[0]}


class Client:
    """A websockets client that tallies every frame it sends and receives."""

    def __init__(self, ws: Any, sent: Tally, received: Tally) -> None:
        self.ws, self.sent, self.received = ws, sent, received

    @classmethod
    async def open(cls, url: str, sent: Tally, received: Tally) -> Client:
        ws = await websockets.connect(url, max_size=None, ping_interval=None)
        return cls(ws, sent, received)

    async def recv(self) -> str:
        frame = await asyncio.wait_for(self.ws.recv(), 5)
        assert isinstance(frame, bytes)
        return self.received.add(frame)

    async def send(self, frame: bytes) -> None:
        self.sent.add(frame)
        await self.ws.send(frame)

    async def until_closed(self) -> tuple[int, str]:
        """Read (and tally) frames until the server closes; its code and reason."""
        try:
            while True:
                await self.recv()
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None, "the server closed without a close frame"
            return closed.rcvd.code, closed.rcvd.reason


async def test_scripted_session_counters_equal_what_happened(tmp_path: Path) -> None:
    sent, received = Tally(), Tally()  # from the clients' side
    async with run_collab(tmp_path, ENV) as srv:
        doc = f"{srv.ws_url}/doc"
        # Two editors sync, one edits and shows presence.
        a = await Client.open(doc, sent, received)
        assert await a.recv() == "SyncStep1"
        await a.send(p.encode_step1(b"\x00"))
        assert await a.recv() == "SyncStep2"
        b = await Client.open(doc, sent, received)
        assert await b.recv() == "SyncStep1"
        await b.send(p.encode_step1(b"\x00"))
        assert await b.recv() == "SyncStep2"
        live = await scrape(srv.url)
        assert value(live, "collab_active_connections") == 2
        assert value(live, "collab_active_rooms") == 1
        await a.send(p.encode_update(update_inserting("hello")))
        assert await b.recv() == "SyncUpdate"
        await a.send(awareness_frame(7, {"user": "a"}))
        assert await b.recv() == "Awareness"
        # A leaves normally; B hears its presence removed.
        await a.ws.close(1000, "bye")
        assert a.ws.close_code == 1000
        assert await b.recv() == "Awareness"

        # Killed without a close frame (after reading its step1).
        killed = await asyncio.to_thread(RawWebSocket, srv.port, "/solo")
        received.add(await asyncio.to_thread(killed.read_data))
        await asyncio.to_thread(killed.kill)

        # A bad frame.
        c = await Client.open(f"{srv.ws_url}/bad", sent, received)
        assert await c.recv() == "SyncStep1"
        await c.ws.send(b"\x09")  # not tallied as sent: the server rejects it undecoded
        assert await c.until_closed() == (1002, "unknown message type 9")

        # A denied token: the auth frame, then 4401 with the reason.
        d = await Client.open(f"{doc}?token=bad", sent, received)
        assert await d.until_closed() == (4401, "invalid token")
        assert received.counts["Auth"][0] == 1

        # A close frame without a status code.
        quiet = await asyncio.to_thread(RawWebSocket, srv.port, "/quiet")
        received.add(await asyncio.to_thread(quiet.read_data))
        await asyncio.to_thread(quiet.send_close_without_status)
        got = await asyncio.to_thread(quiet.read_until_closed)
        quiet.close()
        assert got.close_code == 1005 and got.eof

        await b.ws.close(1000)

        samples = await eventually(
            lambda: scrape(srv.url),
            lambda s: (
                value(s, "collab_active_connections") == 0
                and value(s, "collab_connection_closes_total") == 6
                and value(s, "collab_active_rooms") == 0
            ),
        )
        log = srv.log_text()

    closes = {
        (lab["code"], lab["initiator"]): v
        for n, lab, v in samples
        if n == "collab_connection_closes_total" and v
    }
    assert closes == {
        ("1000", "client"): 2,
        ("1006", "abnormal"): 1,
        ("1002", "server"): 1,
        ("4401", "server"): 1,
        ("1005", "abnormal"): 1,
    }
    assert value(samples, "collab_connections_opened_total", endpoint="ywebsocket") == 6
    assert by_label(samples, "collab_frames_rejected_total", "reason") == {"ProtocolError": 1}
    assert value(samples, "collab_auth_denied_total") == 1
    assert by_label(samples, "collab_frames_in_total", "type") == sent.frames()
    assert by_label(samples, "collab_bytes_in_total", "type") == sent.bytes()
    assert by_label(samples, "collab_frames_out_total", "type") == received.frames()
    assert by_label(samples, "collab_bytes_out_total", "type") == received.bytes()
    assert value(samples, "collab_outbound_queue_overflows_total") == 0
    assert value(samples, "collab_store_errors_total") == 0
    assert value(samples, "collab_store_seconds_count", op="check", result="ok") >= 1
    assert value(samples, "collab_event_loop_lag_seconds") >= 0
    for event in ("publish", "receive", "error", "reconnect"):
        assert ("collab_backplane_events_total", {"event": event}, 0.0) in samples

    # One close line per socket, the abnormal ones as warnings with what an
    # operator needs: id, room, duration, the last frame type seen.
    lines = [r for r in json_lines(log) if r["msg"] == "connection closed"]
    assert len(lines) == 6 and len({r["conn_id"] for r in lines}) == 6
    abnormal = [r for r in lines if r["initiator"] == "abnormal"]
    assert sorted(r["code"] for r in abnormal) == [1005, 1006]
    for r in abnormal:
        assert r["level"] == "warning"
        assert {"conn_id", "room", "duration", "last_frame", "reason"} <= r.keys()
        assert r["room"] in ("solo", "quiet")
    for r in lines:
        assert r["reason"] or r["initiator"] != "server", r
        assert {"frames_in", "bytes_in", "frames_out", "bytes_out"} <= r.keys()
    bye = next(r for r in lines if r["reason"] == "bye")
    assert (bye["code"], bye["initiator"], bye["last_frame"]) == (1000, "client", "Awareness")


def test_per_frame_counting_stays_off_prometheus() -> None:
    """The hot path only bumps ints; flush() moves them to the counters once."""
    m = Metrics()
    count_in = m.counter("in", "ywebsocket")
    count_in("SyncUpdate", 10)
    count_in("SyncUpdate", 5)
    out = m.tally("out", "ywebsocket")
    out["Awareness"] = [3, 30]
    assert m.frames_in.labels("ywebsocket", "SyncUpdate")._value.get() == 0
    m.flush()
    m.flush()  # a second flush adds nothing
    assert m.frames_in.labels("ywebsocket", "SyncUpdate")._value.get() == 2
    assert m.bytes_in.labels("ywebsocket", "SyncUpdate")._value.get() == 15
    assert m.frames_out.labels("ywebsocket", "Awareness")._value.get() == 3
    assert out["Awareness"] == [0, 0]


def test_multiproc_dir_is_fresh_per_run(tmp_path: Path) -> None:
    configured = tmp_path / "prom"
    configured.mkdir()
    (configured / "counter_123.db").write_bytes(b"stale")
    (configured / "keep.txt").write_text("not ours")
    with multiproc_dir(str(configured)) as path:
        assert path == str(configured)
        assert sorted(os.listdir(path)) == ["keep.txt"]
    with multiproc_dir(None) as path:
        made = Path(path)
        assert made.is_dir() and not list(made.iterdir())
    assert not made.exists()


async def _pids(srv: CollabProcess, want: int) -> set[int]:
    seen: set[int] = set()

    async def probe() -> set[int]:
        _, body = await get_json(srv.url + "/readyz")
        seen.add(body["pid"])
        return seen

    return await eventually(probe, lambda s: len(s) >= want, timeout=20, interval=0.01)


async def test_metrics_sum_across_workers(tmp_path: Path) -> None:
    prom_dir = tmp_path / "prom"
    prom_dir.mkdir()
    (prom_dir / "counter_999999.db").write_bytes(b"left over from a previous run")
    env = {**ENV, "PROMETHEUS_MULTIPROC_DIR": str(prom_dir)}
    async with run_collab(tmp_path, env, ["--workers", "2"]) as srv:
        pids = await _pids(srv, 2)
        first = await scrape(srv.url)
        assert value(first, "collab_connections_opened_total") == 0  # the stale file is gone
        # Open sockets until both workers hold some (the kernel picks who accepts).
        sockets: list[Any] = []
        tags: dict[str, int] = collections.Counter()
        async with asyncio.timeout(30):
            while len(tags) < 2 or min(tags.values()) < 2:
                ws = await websockets.connect(
                    f"{srv.ws_url}/room-{len(sockets)}", ping_interval=None
                )
                await ws.recv()
                sockets.append(ws)
                opened = [r for r in json_lines(srv.log_text()) if r["msg"] == "connection opened"]
                tags = collections.Counter(r["conn_id"].rsplit("-", 1)[0] for r in opened)
        total = len(sockets)
        assert sum(tags.values()) == total
        # Whichever worker answers, it reports both workers' sockets.
        for _ in range(6):
            s = await scrape(srv.url)
            assert value(s, "collab_active_connections") == total
            assert value(s, "collab_connections_opened_total") == total
        # Frame tallies reach the shared files on each worker's next lag tick.
        await eventually(
            lambda: scrape(srv.url),
            lambda s: value(s, "collab_frames_out_total", type="SyncStep1") == total,
        )
        await sockets.pop().close()
        await eventually(
            lambda: scrape(srv.url),
            lambda s: (
                value(s, "collab_active_connections") == total - 1
                and value(s, "collab_connection_closes_total", code="1000") == 1
            ),
        )

        # A worker that dies: its sockets leave the live gauges (mark_process_dead),
        # its counters stay in the sums.
        victim = next(iter(pids))
        os.kill(victim, signal.SIGKILL)
        await srv.wait_for_log(f"worker pid {victim} exited")
        survivors = await eventually(lambda: _alive_count(sockets), lambda n: n < total - 1)
        s = await eventually(
            lambda: scrape(srv.url), lambda s: value(s, "collab_active_connections") == survivors
        )
        assert value(s, "collab_connections_opened_total") == total
        for ws in sockets:
            await ws.close()


async def _alive_count(sockets: list[Any]) -> int:
    # A socket on the killed worker sees its TCP connection drop.
    await asyncio.sleep(0)
    return sum(1 for ws in sockets if ws.close_code is None)
