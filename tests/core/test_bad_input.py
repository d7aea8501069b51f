"""Bad input closes only the socket that sent it, with a specific code.

Each case: two good clients are editing; a third socket sends the bad frame
and must get the exact close code (and a reason); the good clients keep
converging; a fresh client afterwards reads the correct document.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import websockets

from collab.client import YClient
from collab.wire import ywebsocket as p

from .helpers import (
    converge,
    raw_close,
    raw_ws_connect,
    read_until_close_frame,
    serve,
    settings,
    text_of,
    update_inserting,
)

pytestmark = pytest.mark.anyio

MAX_FRAME = 64 * 1024

CASES: list[tuple[str, Any, int, str]] = [
    ("empty", b"", 1002, "empty frame"),
    ("text", "hello", 1003, "text frames"),
    ("unknown type", b"\x09\x00", 1002, "unknown message type 9"),
    ("unknown sync type", b"\x00\x07\x00", 1002, "unknown sync message type"),
    ("truncated varint", b"\x00\x02\x80", 1002, "truncated varUint"),
    ("length past end", b"\x00\x02\x10abc", 1002, "past the end"),
    ("update pycrdt rejects", p.encode_update(b"garbage-not-an-update"), 1007, "update rejected"),
    ("awareness invalid json", p.encode_awareness(b"\x01\x05\x01\x03{x}"), 1007, "not JSON"),
    ("awareness truncated", p.encode_awareness(b"\x02\x05\x01\x02{}"), 1002, "truncated"),
    ("oversize", p.encode_update(b"\x00" * (MAX_FRAME + 1)), 1009, "exceeds"),
]


@pytest.mark.parametrize(
    ("frame", "code", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
async def test_bad_frame_closes_only_its_socket(frame: Any, code: int, reason: str) -> None:
    async with serve(settings(max_frame_bytes=MAX_FRAME)) as srv:
        url = f"{srv.ws_url}/shared"
        async with YClient(url) as a, YClient(url) as b:
            a.text().insert(0, "before;")
            await converge([a, b])
            got_code, got_reason = await raw_close(url, [frame])
            assert (got_code, reason in got_reason) == (code, True), got_reason
            b.text().insert(len(b.text()), "after;")
            a.text().insert(0, "again;")
            final = await converge([a, b])
            assert sorted(final.split(";")) == ["", "after", "again", "before"]
        assert await text_of(url) == final


@pytest.mark.parametrize("room", ["", "a//b", "../etc", "x" * 300, "sp%20ace", "a%00b", "healthz"])
async def test_invalid_room_names_get_1008_before_joining(room: str) -> None:
    async with serve() as srv:
        async with websockets.connect(f"{srv.ws_url}/{room}") as ws:
            with pytest.raises(websockets.ConnectionClosed) as info:
                await asyncio.wait_for(ws.recv(), 5)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1008
        assert info.value.rcvd.reason
        assert not srv.server.config.app.state.collab.rooms


async def test_a_client_that_stops_reading_is_closed_with_1013() -> None:
    """A consumer that falls too far behind is closed, never buffered without bound."""
    s = settings(outbound_queue_bytes=256 * 1024, outbound_queue_frames=64)
    async with serve(s) as srv:
        url = f"{srv.ws_url}/firehose"
        metrics = srv.server.config.app.state.metrics
        slow = await asyncio.to_thread(raw_ws_connect, srv.port, "/firehose")
        try:
            async with YClient(url) as writer:
                big = "x" * 50_000
                for _ in range(400):  # up to 20 MB at a 256 KiB queue: bounded
                    writer.text().insert(0, big)
                    await writer.wait_for(lambda c: True, 1)  # yield to the server
                    if metrics.queue_overflows._value.get() > 0:
                        break
                assert metrics.queue_overflows._value.get() == 1
                code, reason = await asyncio.to_thread(read_until_close_frame, slow)
                assert (code, reason) == (1013, "outbound queue overflow: client too slow")
                writer.text().insert(0, "ok")  # the writer is unaffected
                await writer.wait_for(lambda c: True, 1)
            assert (await text_of(url)).startswith("ok")
        finally:
            slow.close()


async def test_bad_input_logs_the_connection_id(caplog: pytest.LogCaptureFixture) -> None:
    async with serve() as srv:
        with caplog.at_level("INFO"):
            await raw_close(f"{srv.ws_url}/r", [b"\x09"])
        lines = [r for r in caplog.records if "bad input" in r.getMessage()]
        assert lines and all(getattr(r, "conn_id", "").startswith("c-") for r in lines)
        closes = [r for r in caplog.records if r.getMessage() == "connection closed"]
        assert closes and closes[0].code == 1002  # type: ignore[attr-defined]
        assert closes[0].conn_id == lines[0].conn_id  # type: ignore[attr-defined]


def test_update_helper_makes_valid_updates() -> None:
    assert update_inserting("x")[:1] == b"\x01"
