"""Real JavaScript clients (y-websocket's WebsocketProvider, Tiptap's
HocuspocusProvider) see what the HTTP API does: server-applied updates,
pushed messages, closes; and the JSON export matches what they hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from collab.errors import ApiError
from tests.observability.common import eventually
from tests.support.jsclient import JSClient

from .helpers import api, serve, text_update

pytestmark = pytest.mark.anyio

T = 10_000


async def test_js_clients_see_server_updates_messages_and_closes(tmp_path: Path) -> None:
    async with serve() as srv, JSClient.start(tmp_path) as js:
        a = api(srv)
        await js.call("connect", handle="y", url=srv.ws_url, room="team/doc")
        await js.call(
            "connect_hocuspocus", handle="h", url=f"{srv.ws_url}/hocuspocus", name="team/doc"
        )
        await a.edit_text("team/doc", "from the API")
        await a.apply_update("team/doc", text_update("<binary> ", field="other"))
        for handle in ("y", "h"):
            await js.call("wait_text", handle=handle, equals="from the API", timeout_ms=T)
            await js.call(
                "wait_text", handle=handle, name="other", equals="<binary> ", timeout_ms=T
            )

        # A room message: Hocuspocus gets a stateless frame; y-websocket has none.
        sent = await a.message_room("team/doc", '{"kind": "notice"}')
        assert (sent["delivered_here"], sent["skipped_here"]) == (1, 1)
        event = await js.event(event="stateless", handle="h")
        assert event["payload"] == '{"kind": "notice"}'

        # One connection by id: the listing names both sockets.
        [room] = (await a.rooms())["rooms"]
        assert room["peers"] == 2
        results = {}
        for conn_id in room["connections"]:
            try:
                results[conn_id] = (await a.message_connection(conn_id, "just you"))["delivered"]
            except ApiError as exc:
                results[conn_id] = exc.status
        assert sorted(results.values()) == [1, 409]  # Hocuspocus: 1 document; y-websocket: 409
        assert (await js.event(event="stateless", handle="h"))["payload"] == "just you"

        # Everyone out (after a permission change, say): 4205, and they reconnect.
        mark = js.mark()
        closed = await a.close_room("team/doc", reason="permissions changed")
        assert closed["closed_here"] == 2
        for handle in ("y", "h"):
            close = await js.event(event="close", handle=handle, since=mark)
            assert (close["code"], close["reason"]) == (4205, "permissions changed")
        await js.call("wait_synced", handle="y", timeout_ms=T)
        await a.edit_text("team/doc", " again")
        await js.call("wait_text", handle="y", equals="from the API again", timeout_ms=T)


async def test_json_export_matches_what_js_clients_hold(tmp_path: Path) -> None:
    async with serve() as srv, JSClient.start(tmp_path) as js:
        await js.call("connect", handle="a", url=srv.ws_url, room="export")
        await js.call(
            "connect_hocuspocus", handle="b", url=f"{srv.ws_url}/hocuspocus", name="export"
        )
        await js.call("insert", handle="a", text="Hello world, ", name="body")
        await js.call(
            "format", handle="a", index=0, length=5, name="body", attributes={"bold": True}
        )
        await js.call("wait_text", handle="b", name="body", equals="Hello world, ", timeout_ms=T)
        await js.call("insert", handle="b", text="from two clients", name="body")
        await js.call(
            "format",
            handle="b",
            index=6,
            length=5,
            name="body",
            attributes={"link": {"href": "https://example.com"}, "italic": True},
        )
        await js.call("map_set", handle="a", key="title", value="Notes")
        await js.call(
            "map_set",
            handle="b",
            key="meta",
            value={"n": 3, "tags": ["x", "y"], "ok": True, "pi": 3.5},
        )
        await js.call("array_push", handle="a", values=[1, "two", {"three": 3}, None])
        types = {"body": "text", "map": "map", "array": "array", "missing": "text"}
        rich = {"body": "delta"}

        async def both() -> list[tuple[dict[str, Any], dict[str, Any]]]:
            return [
                (
                    await js.call("to_json", handle=h, types=types),
                    await js.call("to_json", handle=h, types=rich),
                )
                for h in ("a", "b")
            ]

        # Converged: both clients hold the same thing, every edit included.
        held = await eventually(
            both,
            lambda p: (
                p[0] == p[1]
                and "meta" in p[0][0]["map"]
                and len(p[0][0]["array"]) == 4
                and p[0][0]["body"] == "Hello world, from two clients"
            ),
        )
        expected, expected_rich = held[0]
        assert expected_rich["body"][0] == {"insert": "Hello", "attributes": {"bold": True}}

        a = api(srv)
        got = await eventually(lambda: a.get_json("export", types), lambda j: j == expected)
        assert got["map"]["meta"] == {"n": 3, "tags": ["x", "y"], "ok": True, "pi": 3.5}
        assert await a.get_json("export", rich) == expected_rich
