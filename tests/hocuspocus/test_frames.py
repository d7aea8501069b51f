"""Frame-level behaviour a real provider does not show by itself: exact
answers, keepalive, the pre-authentication bound, and bad frames — each bad
frame closes only the socket that sent it, with its code and a reason, while
a HocuspocusProvider and a y-websocket client in the same room keep working.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pycrdt import Text

from collab.wire import hocuspocus as hp
from collab.wire import ywebsocket as yp
from tests.support.jsclient import JSClient
from tests.support.waiting import wait_until

from .helpers import Raw, Rules, serve, settings, update_inserting

pytestmark = pytest.mark.anyio

T = 10_000
MAX_FRAME = 64 * 1024


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path) as client:
        yield client


async def test_open_sync_and_acknowledge() -> None:
    async with serve() as srv, Raw.connect(srv.hp_url) as raw:
        assert await raw.open("doc") == hp.Authenticated("doc", "read-write")
        # Our step1 (sent on joining) and the step2 answering the client's.
        await raw.next(lambda m: isinstance(m, hp.Sync) and isinstance(m.message, yp.SyncStep1))
        await raw.next(lambda m: isinstance(m, hp.Sync) and isinstance(m.message, yp.SyncStep2))
        await raw.send(hp.encode_update("doc", update_inserting("hi")))
        assert await raw.next(lambda m: isinstance(m, hp.SyncStatus)) == hp.SyncStatus("doc", True)
        room = srv.collab.room("doc")
        assert room is not None and str(room.doc.get("text", type=Text)) == "hi"
        # A later step1 is answered with step2 and our step1 (Hocuspocus does
        # so: the client's step2 answer then earns a SyncStatus).
        raw.seen.clear()
        await raw.send(hp.encode_step1("doc", b"\x00"))
        await raw.next(lambda m: isinstance(m, hp.Sync) and isinstance(m.message, yp.SyncStep1))
        assert [type(m.message).__name__ for m in raw.seen if isinstance(m, hp.Sync)] == [
            "SyncStep2",
            "SyncStep1",
        ]
        # SyncReply: a step1 that must not be answered with our step1.
        raw.seen.clear()
        await raw.send(
            hp.encode_sync("doc", yp.SyncType.STEP1, b"\x00", reply=True),
            hp.encode_stateless("doc", "echo:x"),
        )
        await raw.next(lambda m: isinstance(m, hp.Stateless))
        assert [type(m.message).__name__ for m in raw.seen if isinstance(m, hp.Sync)] == [
            "SyncStep2"
        ]


async def test_read_only_update_gets_sync_status_0() -> None:
    async with serve() as srv, Raw.connect(srv.hp_url) as raw:
        assert await raw.open("ro", "readonly") == hp.Authenticated("ro", "readonly")
        await raw.send(hp.encode_sync("ro", yp.SyncType.STEP2, b"\x00\x00"))
        assert await raw.next(lambda m: isinstance(m, hp.SyncStatus)) == hp.SyncStatus("ro", True)
        await raw.send(hp.encode_update("ro", update_inserting("nope")))
        assert await raw.next(lambda m: isinstance(m, hp.SyncStatus)) == hp.SyncStatus("ro", False)
        await raw.send(hp.encode_sync("ro", yp.SyncType.STEP2, update_inserting("nope")))
        assert await raw.next(lambda m: isinstance(m, hp.SyncStatus)) == hp.SyncStatus("ro", False)
        room = srv.collab.room("ro")
        assert room is not None and room.doc.get_state() == b"\x00"


async def test_denial_answers_permission_denied_and_keeps_the_socket() -> None:
    async with serve() as srv, Raw.connect(srv.hp_url) as raw:
        assert await raw.open("x", "bad") == hp.PermissionDenied("x", "bad-token")
        # Frames of the denied document are dropped, not queued or applied.
        for _ in range(200):
            await raw.send(hp.encode_update("x", update_inserting("sneaky")))
        await raw.send(hp.PING)
        await raw.next(lambda m: isinstance(m, hp.Pong))
        assert srv.collab.room("x") is None
        # Another token for the same document is a fresh attempt.
        assert await raw.open("x", "good") == hp.Authenticated("x", "read-write")
        await raw.send(hp.encode_update("x", update_inserting("ok")))
        assert await raw.next(lambda m: isinstance(m, hp.SyncStatus)) == hp.SyncStatus("x", True)


async def test_ping_pong_and_close() -> None:
    async with serve() as srv, Raw.connect(srv.hp_url) as raw:
        await raw.send(hp.PING)
        assert await raw.next(lambda m: True) == hp.Pong()
        await raw.open("a")
        await raw.open("b")
        await wait_until(lambda: srv.collab.room("a") and srv.collab.room("b"))
        await raw.send(hp.encode_close("a"))
        assert await raw.next(lambda m: isinstance(m, hp.Close)) == hp.Close(
            "a", "provider_initiated"
        )
        room_a, room_b = srv.collab.room("a"), srv.collab.room("b")
        assert room_a is not None and not room_a.peers
        assert room_b is not None and len(room_b.peers) == 1
        # The socket and document b are still there; a Close for an unknown
        # document is ignored.
        await raw.send(
            hp.encode_close("never-opened"), hp.encode_update("b", update_inserting("b"))
        )
        assert await raw.next(lambda m: isinstance(m, hp.SyncStatus)) == hp.SyncStatus("b", True)
        # Reopening a closed document works.
        assert await raw.open("a") == hp.Authenticated("a", "read-write")


async def test_frames_wait_for_a_slow_authentication_then_apply_in_order() -> None:
    rules = Rules()
    async with serve(rules=rules) as srv, Raw.connect(srv.hp_url) as raw:
        await raw.send(
            hp.encode_auth_token("slow", "slow"),
            hp.encode_step1("slow", b"\x00"),
            hp.encode_update("slow", update_inserting("queued")),
            hp.encode_stateless("slow", "echo:after the update"),
        )
        # Another document on the socket is not held up by it.
        assert await raw.open("fast") == hp.Authenticated("fast", "read-write")
        assert srv.collab.room("slow") is None
        rules.release.set()
        await raw.next(lambda m: isinstance(m, hp.Stateless) and m.address == "slow")
        kinds = [hp.message_kind(m) for m in raw.seen if getattr(m, "address", "") == "slow"]
        assert kinds == ["Authenticated", "SyncStep1", "SyncStep2", "SyncStatus", "Stateless"]
        room = srv.collab.room("slow")
        assert room is not None and room.doc.get_state() != b"\x00"


async def test_session_aware_addresses_get_their_own_frames() -> None:
    async with serve() as srv, Raw.connect(srv.hp_url) as raw:
        one, two = "doc\x00s1", "doc\x00s2"
        assert await raw.open(one) == hp.Authenticated(one, "read-write")
        assert await raw.open(two) == hp.Authenticated(two, "read-write")
        await raw.send(hp.encode_update(one, update_inserting("x")))
        # The other session of the same document gets the update, addressed to it.
        got = await raw.next(
            lambda m: isinstance(m, hp.Sync) and isinstance(m.message, yp.SyncUpdate)
        )
        assert isinstance(got, hp.Sync) and got.address == two
        room = srv.collab.room("doc")
        assert room is not None and len(room.peers) == 2


# -- closes --------------------------------------------------------------------


def _flood(n: int) -> list[bytes]:
    return [hp.encode_awareness("pending", b"\x00")] * n


CLOSE_CASES: list[tuple[str, list[Any], int, str]] = [
    ("bad document name", [hp.encode_auth_token("../etc", "")], 1008, "not allowed"),
    ("empty document name", [hp.encode_auth_token("", "")], 1008, "room name is empty"),
    ("reserved document name", [hp.encode_auth_token("healthz", "")], 1008, "reserved"),
    ("bad session id", [hp.encode_auth_token("doc\x00no way", "")], 1008, "session id"),
    ("unknown type", [b"\x03doc\x0b"], 1002, "unknown message type 11"),
    ("unknown auth type", [b"\x03doc\x02\x05"], 1002, "unknown auth message type"),
    ("truncated", [b"\x03doc\x00\x02\x80"], 1002, "truncated varUint"),
    ("empty frame", [b""], 1002, "empty frame"),
    ("text frame", ["hello"], 1003, "text frames"),
    (
        "broadcast stateless",
        [hp.encode_broadcast_stateless("shared", "hi all")],
        1008,
        "BroadcastStateless",
    ),
    ("oversize", [hp.encode_update("shared", b"\x00" * (MAX_FRAME + 1))], 1009, "exceeds"),
    (
        "invalid update",
        [hp.encode_auth_token("shared", ""), hp.encode_update("shared", b"garbage-not-an-update")],
        1007,
        "update rejected",
    ),
    ("frames before auth", _flood(9), 1008, "before authentication"),
    (
        "documents before auth",
        [hp.encode_awareness(f"d{i}", b"\x00") for i in range(9)],
        1008,
        "documents not authenticated",
    ),
]


@pytest.mark.parametrize(
    ("frames", "code", "reason"), [c[1:] for c in CLOSE_CASES], ids=[c[0] for c in CLOSE_CASES]
)
async def test_bad_frame_closes_only_its_socket(
    js: JSClient, frames: list[Any], code: int, reason: str
) -> None:
    async with serve(settings(max_frame_bytes=MAX_FRAME, auth_queue_frames=8)) as srv:
        await js.call("connect_hocuspocus", handle="h", url=srv.hp_url, name="shared")
        await js.call("connect", handle="y", url=srv.ws_url, room="shared")
        await js.call("insert", handle="h", text="before;")
        await js.call("wait_text", handle="y", equals="before;", timeout_ms=T)

        async with Raw.connect(srv.hp_url) as raw:
            await raw.send(*frames)
            got_code, got_reason = await raw.closed()
        assert got_code == code and reason in got_reason, (got_code, got_reason)

        await js.call("insert", handle="y", text="after;")
        await js.call("wait_text", handle="h", equals="before;after;", timeout_ms=T)
        await js.call("insert", handle="h", text="again;")
        await js.call("wait_text", handle="y", equals="before;after;again;", timeout_ms=T)
        assert not js.events_for("h", "close")
        room = srv.collab.room("shared")
        assert room is not None and len(room.peers) == 2


async def test_bytes_before_auth_are_bounded() -> None:
    s = settings(auth_queue_bytes=4096)
    async with serve(s) as srv, Raw.connect(srv.hp_url) as raw:
        big = hp.encode_update("doc", b"\x00" * 3000)
        await raw.send(big, big)
        code, reason = await raw.closed()
        assert code == 1008 and "4096 bytes" in reason


async def test_stateless_flood_with_a_slow_hook_is_bounded() -> None:
    rules = Rules()
    gate = asyncio.Event()

    async def slow_hook(event: Any) -> None:
        await gate.wait()

    rules.on_stateless = slow_hook  # type: ignore[method-assign]
    async with serve(rules=rules) as srv, Raw.connect(srv.hp_url) as raw:
        await raw.open("doc")
        await raw.next(lambda m: isinstance(m, hp.Sync))  # joined: the room's step1
        await raw.send(*[hp.encode_stateless("doc", "x")] * 400)
        code, reason = await raw.closed()
        assert code == 1013 and "stateless" in reason
        gate.set()


async def test_pings_only_to_providers_that_answer_them() -> None:
    async with (
        serve(settings(ping_interval=0.1)) as srv,
        Raw.connect(srv.hp_url) as v4,
        Raw.connect(srv.hp_url) as v3,
    ):
        await v4.send(hp.encode_auth_token("doc", "", "4.8.0"))
        await v3.send(hp.encode_auth_token("doc", ""))  # 3.x providers send no version
        for _ in range(3):
            await v4.next(lambda m: isinstance(m, hp.Ping))
        await v3.send(hp.encode_stateless("doc", "echo:x"))
        await v3.next(lambda m: isinstance(m, hp.Stateless))
        assert not [m for m in v3.seen if isinstance(m, hp.Ping)]
        await v4.send(hp.PONG)  # tolerated, like any Pong
        await v4.next(lambda m: isinstance(m, hp.Ping))
