"""The real @hocuspocus/provider 4.x against collab, beside y-websocket clients.

Every test drives Node peers through tests/js/client.mjs: a HocuspocusProvider
(handle "h…") and a y-websocket WebsocketProvider (handle "y…") in the same
room, to show that one room serves both protocols.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.jsclient import JSClient, JSClientError
from tests.support.servers import run_collab
from tests.support.waiting import wait_until

from .helpers import serve, settings

pytestmark = pytest.mark.anyio

T = 10_000  # ms, every wait in the driver


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path) as client:
        yield client


async def test_edits_and_awareness_both_ways(js: JSClient) -> None:
    async with serve() as srv:
        got = await js.call("connect_hocuspocus", handle="h", url=srv.hp_url, name="notes/1")
        assert got["scope"] == "read-write"
        await js.call("connect", handle="y", url=srv.ws_url, room="notes/1")

        await js.call("insert", handle="h", text="from hocuspocus;")
        await js.call("wait_text", handle="y", equals="from hocuspocus;", timeout_ms=T)
        await js.call("insert", handle="y", text="from y-websocket;")
        await js.call("wait_text", handle="h", contains="from y-websocket;", timeout_ms=T)
        # Every update of the provider was acknowledged with SyncStatus 1.
        await js.call("wait_synced", handle="h", acked=True, timeout_ms=T)

        await js.call("set_awareness", handle="h", field="user", value={"name": "Hana"})
        await js.call("set_awareness", handle="y", field="user", value={"name": "Yuri"})
        await js.call("wait_awareness", handle="y", value="Hana", timeout_ms=T)
        await js.call("wait_awareness", handle="h", value="Yuri", timeout_ms=T)

        # One room, two peers, one per protocol.
        room = srv.collab.room("notes/1")
        assert room is not None and len(room.peers) == 2
        assert len(srv.hocuspocus_connections()) == 1

        # The provider leaves: its cursor disappears for the y-websocket client.
        await js.call("disconnect", handle="h")
        await js.call("wait_awareness", handle="y", value="Hana", present=False, timeout_ms=T)
        assert (await js.call("text", handle="y")) == "from hocuspocus;from y-websocket;"


async def test_content_already_in_the_room_reaches_a_late_provider(js: JSClient) -> None:
    async with serve() as srv:
        await js.call("connect", handle="y", url=srv.ws_url, room="late")
        await js.call("insert", handle="y", text="written before")
        await js.call("connect_hocuspocus", handle="h", url=srv.hp_url, name="late")
        await js.call("wait_text", handle="h", equals="written before", timeout_ms=T)


async def test_two_documents_on_one_socket(js: JSClient) -> None:
    async with serve() as srv:
        await js.call("hocuspocus_socket", socket="s", url=srv.hp_url)
        await js.call("connect_hocuspocus", handle="ha", socket="s", name="doc-a")
        await js.call("connect_hocuspocus", handle="hb", socket="s", name="doc-b")
        await js.call("connect", handle="ya", url=srv.ws_url, room="doc-a")
        await js.call("connect", handle="yb", url=srv.ws_url, room="doc-b")
        assert len(srv.hocuspocus_connections()) == 1

        await js.call("insert", handle="ha", text="A")
        await js.call("insert", handle="hb", text="B")
        await js.call("wait_text", handle="ya", equals="A", timeout_ms=T)
        await js.call("wait_text", handle="yb", equals="B", timeout_ms=T)
        await js.call("insert", handle="yb", text="b")
        await js.call("wait_text", handle="hb", equals="Bb", timeout_ms=T)
        assert await js.call("text", handle="ha") == "A"

        # Closing one document (the provider detaches: a Close frame) leaves
        # the other working on the same socket.
        await js.call("disconnect", handle="ha")
        room_a = srv.collab.room("doc-a")
        await wait_until(lambda: room_a is None or len(room_a.peers) == 1, what="doc-a left")
        assert len(srv.hocuspocus_connections()) == 1
        await js.call("insert", handle="yb", text="!")
        await js.call("wait_text", handle="hb", equals="Bb!", timeout_ms=T)


async def test_denied_token_fails_that_document_only(js: JSClient) -> None:
    async with serve() as srv:
        await js.call("hocuspocus_socket", socket="s", url=srv.hp_url)
        await js.call("connect_hocuspocus", handle="ok", socket="s", name="open", token="good")
        with pytest.raises(JSClientError) as info:
            await js.call(
                "connect_hocuspocus",
                handle="no",
                socket="s",
                name="closed",
                token="bad",
                keep_on_error=True,
                timeout_ms=T,
            )
        assert info.value.kind == "authenticationFailed"
        assert info.value.data["reason"] == "bad-token"
        assert (await js.event(event="authenticationFailed", handle="no"))["reason"] == "bad-token"
        # The hook saw the token of each document.
        assert sorted((r.room, r.token) for r in srv.rules.auth_requests) == [
            ("closed", "bad"),
            ("open", "good"),
        ]

        # The socket stays open: the allowed document keeps syncing, and what
        # the denied provider edits never reaches its room.
        await js.call("insert", handle="no", text="denied edit")
        await js.call("connect", handle="y", url=srv.ws_url, room="open")
        await js.call("insert", handle="ok", text="still here")
        await js.call("wait_text", handle="y", equals="still here", timeout_ms=T)
        await js.call("connect", handle="yc", url=srv.ws_url, room="closed")
        assert await js.call("text", handle="yc") == ""
        assert not [e for e in js.events_for("ok", "close")]


async def test_read_only_scope(js: JSClient) -> None:
    async with serve() as srv:
        await js.call("connect", handle="y", url=srv.ws_url, room="ro")
        await js.call("insert", handle="y", text="original")
        got = await js.call(
            "connect_hocuspocus", handle="h", url=srv.hp_url, name="ro", token="readonly"
        )
        assert got["scope"] == "readonly"
        await js.call("wait_text", handle="h", equals="original", timeout_ms=T)
        # Its step2 added nothing, so it was acknowledged: nothing unsynced.
        await js.call("wait_synced", handle="h", acked=True, timeout_ms=T)

        await js.call("insert", handle="h", text="attempt;")
        # The stateless echo is answered after the update before it was
        # handled (one socket's frames are handled in order): a sync point.
        await js.call("send_stateless", handle="h", payload="echo:after")
        await js.event(event="stateless", handle="h", payload="echo:after")
        state = await js.call("hocuspocus_state", handle="h")
        assert state["unsynced_changes"] == 1, state  # SyncStatus 0: not applied
        assert state["scope"] == "readonly"

        await js.call("connect", handle="y2", url=srv.ws_url, room="ro")
        assert await js.call("text", handle="y2") == "original"
        assert await js.call("text", handle="y") == "original"
        # Read-only still sees others' edits, and its cursor is shown.
        await js.call("insert", handle="y", text="!", index=8)
        # (its own rejected edit stays in its local copy: the provider keeps it)
        await js.call("wait_text", handle="h", contains=["original", "!"], timeout_ms=T)
        await js.call("set_awareness", handle="h", field="user", value={"name": "Reader"})
        await js.call("wait_awareness", handle="y", value="Reader", timeout_ms=T)


async def test_stateless_round_trip_and_server_pushes(js: JSClient) -> None:
    async with serve() as srv:
        await js.call("connect_hocuspocus", handle="h1", url=srv.hp_url, name="chat")
        await js.call("connect_hocuspocus", handle="h2", url=srv.hp_url, name="chat")
        await js.call("connect", handle="y", url=srv.ws_url, room="chat")

        await js.call("send_stateless", handle="h1", payload="echo:hello")
        assert (await js.event(event="stateless", handle="h1"))["payload"] == "echo:hello"
        event = srv.rules.stateless[0]
        assert (event.room, event.payload) == ("chat", "echo:hello")
        assert event.connection_id in srv.hocuspocus_connections()

        # The hook broadcasts: both providers get it, the sender included.
        await js.call("send_stateless", handle="h2", payload="broadcast:to all")
        for handle in ("h1", "h2"):
            got = await js.event(event="stateless", handle=handle, payload="to all")
            assert got["payload"] == "to all"

        # The application pushes: to the room, then to one connection.
        assert srv.collab.send_stateless("chat", "from the server")
        for handle in ("h1", "h2"):
            await js.event(event="stateless", handle=handle, payload="from the server")
        assert srv.collab.send_stateless_to(event.connection_id, "chat", "just you")
        await js.event(event="stateless", handle="h1", payload="just you")
        await js.call("send_stateless", handle="h2", payload="echo:sync point")
        await js.event(event="stateless", handle="h2", payload="echo:sync point")
        assert all(e["payload"] != "just you" for e in js.events_for("h2", "stateless"))
        # Nothing to reach: the room is not loaded / the connection is not in it.
        assert not srv.collab.send_stateless("nowhere", "x")
        assert not srv.collab.send_stateless_to("c-nobody", "chat", "x")
        assert not js.events_for("y", "stateless")


async def test_a_dropped_socket_reconnects_reauthenticates_and_resyncs(js: JSClient) -> None:
    """A provider whose socket dies (no close frame) reconnects, authenticates
    again and pushes what it wrote meanwhile."""
    async with serve(settings()) as srv:
        await js.call("connect_hocuspocus", handle="h", url=srv.hp_url, name="re")
        await js.call("connect", handle="y", url=srv.ws_url, room="re")
        await js.call("insert", handle="h", text="one;")
        await js.call("wait_text", handle="y", equals="one;", timeout_ms=T)
        await js.call("terminate", handle="h")
        await js.call("insert", handle="h", text="offline;")
        await js.call("wait_text", handle="y", equals="one;offline;", timeout_ms=T)
        # The provider twice, the y-websocket client once: one hook for both endpoints.
        assert len(srv.rules.auth_requests) == 3
        assert len({r.connection_id for r in srv.rules.auth_requests}) == 3


async def test_idle_provider_without_awareness_is_kept_alive(js: JSClient) -> None:
    """A provider reconnects after messageReconnectTimeout without a message;
    our app-level pings keep an idle one (no cursor to renew) connected."""
    async with serve(settings(ping_interval=0.1)) as srv:
        await js.call(
            "connect_hocuspocus",
            handle="h",
            url=srv.hp_url,
            name="idle",
            message_reconnect_timeout_ms=500,
        )
        [conn_id] = srv.hocuspocus_connections()
        conn = srv.collab.connections[conn_id]
        sent = conn.stats.frames_out
        # Only pings flow now: ~1.5 s of them, three reconnect timeouts.
        await wait_until(lambda: conn.stats.frames_out >= sent + 15, what="15 pings")
        assert not js.events_for("h", "close")
        assert srv.hocuspocus_connections() == [conn_id]


async def test_collab_serve_on_a_configured_path(js: JSClient, tmp_path: Path) -> None:
    """The CLI (`collab serve`, its own uvicorn protocol) with COLLAB_HOCUSPOCUS_PATH."""
    env = {
        "COLLAB_STORE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "COLLAB_HOCUSPOCUS_PATH": "/sync/hp",
        "COLLAB_DRAIN_SECONDS": "0.1",
    }
    async with run_collab(tmp_path, env=env) as srv:
        await js.call("connect_hocuspocus", handle="h", url=f"{srv.ws_url}/sync/hp", name="cli")
        await js.call("connect", handle="y", url=srv.ws_url, room="cli")
        await js.call("insert", handle="h", text="over the CLI")
        await js.call("wait_text", handle="y", equals="over the CLI", timeout_ms=T)
        await js.call("disconnect", handle="h")
        log = await srv.wait_for_log("room=cli code=")  # the close line names the documents
        assert "endpoint=hocuspocus" in log and "path=/sync/hp" in log
