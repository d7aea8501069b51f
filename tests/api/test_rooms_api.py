"""The HTTP API on a real in-process server, driven by the Python helper
(collab.client.ApiClient) and real Python Yjs clients (YClient)."""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import httpx
import pytest
from pycrdt import Doc, Text

from collab import ChangeEvent, Hooks
from collab.client import ApiClient, YClient
from collab.errors import ApiError
from collab.stores.memory import MemoryStore
from tests.support.tokens import TEST_SECRET, mint
from tests.support.waiting import wait_until

from .helpers import API_KEY, OTHER_KEY, api, serve, settings, text_in, text_update

pytestmark = pytest.mark.anyio


async def test_unauthorized_calls_get_401_and_leave_the_document_unchanged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with serve() as srv, YClient(f"{srv.ws_url}/doc") as client:
        client.text().insert(0, "keep")
        await wait_until(lambda: srv.app.state.collab.rooms.get("doc").doc.get_state() != b"\x00")
        async with httpx.AsyncClient(base_url=f"{srv.url}/api") as http:
            for headers in (
                {},
                {"Authorization": "Bearer not-a-key-at-all-000"},
                {"Authorization": f"Basic {API_KEY}"},
            ):
                r = await http.post(
                    "/rooms/doc/update", content=text_update("evil"), headers=headers
                )
                assert r.status_code == 401
                assert r.headers["www-authenticate"] == "Bearer"
                assert r.json()["error"] == "unauthorized"
                r = await http.get("/rooms", headers=headers)
                assert r.status_code == 401
        # Both keys of a rotation work; the document is as the client left it.
        for key in (API_KEY, OTHER_KEY):
            assert text_in(await api(srv, key).get_update("doc")) == "keep"
        assert str(client.text()) == "keep"
    assert API_KEY not in caplog.text and OTHER_KEY not in caplog.text


async def test_jwt_with_the_admin_claim_is_accepted_without_it_refused() -> None:
    s = settings(api_keys="", jwt_secret=TEST_SECRET)
    async with serve(s) as srv:
        admin = mint(TEST_SECRET, rooms=["**"], admin=True)
        await api(srv, admin).edit_text("doc", "by admin")
        with pytest.raises(ApiError) as denied:
            await api(srv, mint(TEST_SECRET, rooms=["**"])).rooms()
        assert denied.value.status == 403
        with pytest.raises(ApiError) as expired:
            await api(srv, mint(TEST_SECRET, rooms=["**"], admin=True, expires_in=-60)).rooms()
        assert (expired.value.status, expired.value.message) == (401, "token expired")
        assert (await api(srv, admin).get_json("doc", {"text": "text"})) == {"text": "by admin"}


async def test_the_api_is_off_without_keys_or_jwt() -> None:
    async with serve(settings(api_keys="")) as srv, httpx.AsyncClient() as http:
        r = await http.get(f"{srv.url}/api/rooms", headers={"Authorization": "Bearer x"})
        assert r.status_code == 404
        assert "api" in settings().reserved_paths  # never a room when on


async def test_bad_requests_are_json_errors_and_touch_nothing() -> None:
    async with serve(settings(max_frame_bytes=4096)) as srv, YClient(f"{srv.ws_url}/doc") as client:
        client.text().insert(0, "intact")
        a = api(srv)
        await wait_until(lambda: srv.app.state.collab.rooms.get("doc").doc.get_state() != b"\x00")
        before = await a.get_update("doc")
        cases: list[tuple[int, str, Any]] = [
            (422, "invalid_update", a.apply_update("doc", b"\x01\x02garbage")),
            (413, "too_large", a.apply_update("doc", b"\x00" * 5000)),
            (400, "bad_request", a.apply_update("doc", b"")),
            (400, "bad_room_name", a.apply_update("../etc", text_update("x"))),
            (400, "bad_room_name", a.get_update("metrics")),
            (400, "bad_request", a.get_json("doc", {"text": "nope"})),
            (400, "bad_request", a.edit_text("doc", "x", mode="insert")),
            (400, "bad_request", a.edit_text("doc", "x", mode="insert", index=99)),
            (400, "bad_request", a.close_room("doc", code=1006)),
        ]
        for status, error, call in cases:
            with pytest.raises(ApiError) as exc:
                await call
            assert (exc.value.status, exc.value.error) == (status, error), exc.value.message
        async with httpx.AsyncClient() as http:
            auth = {"Authorization": f"Bearer {API_KEY}"}
            r = await http.get(f"{srv.url}/api/rooms/doc?state_vector=%%%", headers=auth)
            assert (r.status_code, r.json()["error"]) == (400, "bad_request")
            r = await http.post(f"{srv.url}/api/rooms/doc/text", content=b"{not json", headers=auth)
            assert (r.status_code, r.json()["error"]) == (400, "bad_request")
            r = await http.put(f"{srv.url}/api/rooms/doc/update", headers=auth)
            assert (r.status_code, r.json()["error"]) == (405, "method_not_allowed")
        assert await a.get_update("doc") == before
        assert str(client.text()) == "intact"


async def test_a_write_reaches_clients_the_change_hook_and_the_store() -> None:
    changes: list[ChangeEvent] = []

    async def on_change(event: ChangeEvent) -> None:
        changes.append(event)

    store = MemoryStore()
    async with (
        serve(store=store, hooks=Hooks(on_change=on_change)) as srv,
        YClient(f"{srv.ws_url}/team/notes") as client,
    ):
        result = await api(srv).apply_update("team/notes", text_update("from the server"))
        # Stored before the answer: the store has it now, not a debounce later.
        assert text_in(await store.load("team/notes") or b"") == "from the server"
        await client.wait_for(lambda c: str(c.text()) == "from the server", timeout=5)
        await wait_until(lambda: changes, timeout=5)
        assert [(c.connection_id, c.room) for c in changes] == [("server", "team/notes")]
        doc: Doc[Any] = Doc()
        doc.apply_update(await api(srv).get_update("team/notes"))
        assert base64.b64decode(result["state_vector"]) == doc.get_state()


async def test_rooms_not_loaded_are_read_and_written_then_unloaded() -> None:
    store = MemoryStore()
    await store.open()
    await store.append("cold/read", text_update("stored earlier"))
    async with serve(store=store) as srv:
        rooms = srv.app.state.collab.rooms
        a = api(srv)
        assert "cold/read" not in rooms
        assert text_in(await a.get_update("cold/read")) == "stored earlier"
        assert await a.get_json("cold/read", {"text": "text"}) == {"text": "stored earlier"}
        await a.edit_text("cold/write", "bot line\n")
        await a.edit_text("cold/write", "second\n")
        assert text_in(await store.load("cold/write") or b"") == "bot line\nsecond\n"
        listed = await a.rooms(include_stored=True)
        names = {r["name"]: r for r in listed["rooms"]}
        assert names["cold/read"]["loaded"] is True and names["cold/read"]["peers"] == 0
        # Nobody is in them: unloaded after the grace period (0.3 s here).
        await wait_until(lambda: len(rooms) == 0, timeout=5, what="rooms unloaded")
        listed = await a.rooms(include_stored=True)
        assert {r["name"]: r["loaded"] for r in listed["rooms"]} == {
            "cold/read": False,
            "cold/write": False,
        }
        assert (await a.rooms())["rooms"] == []
        with pytest.raises(ApiError) as missing:
            await a.get_update("never/stored")
        assert missing.value.status == 404


async def test_state_vector_gives_only_the_missing_diff() -> None:
    async with serve() as srv:
        a = api(srv)
        await a.edit_text("doc", "first ")
        mine: Doc[Any] = Doc()
        mine.apply_update(await a.get_update("doc"))
        await a.edit_text("doc", "second")
        diff = await a.get_update("doc", state_vector=mine.get_state())
        assert len(diff) < len(await a.get_update("doc"))
        mine.apply_update(diff)
        assert str(mine.get("text", type=Text)) == "first second"


async def test_text_edits_and_the_json_export() -> None:
    async with serve() as srv:
        a = api(srv)
        await a.edit_text("doc", "world", field="body")
        await a.edit_text(
            "doc", "hello ", field="body", mode="insert", index=0, attributes={"bold": True}
        )
        assert await a.get_json("doc", {"body": "text", "rich": "delta"}) == {
            "body": "hello world",
            "rich": [],
        }
        assert (await a.get_json("doc", {"body": "delta"}))["body"] == [
            {"insert": "hello ", "attributes": {"bold": True}},
            {"insert": "world"},
        ]
        result = await a.edit_text("doc", "réplaced 😀", field="body", mode="replace")
        assert result["text"] == "réplaced 😀"
        await a.edit_text("doc", "!", field="body", mode="insert", index=10)
        assert (await a.get_json("doc", {"body": "text"}))["body"] == "réplaced 😀!"


async def test_a_room_name_ending_in_an_action_word_is_reached_through_percent_2f() -> None:
    async with serve() as srv:
        a = api(srv)  # the helper always sends '/' as %2F
        await a.edit_text("notes/json", "a room, not an export")
        await a.edit_text("notes", "the parent room")
        assert text_in(await a.get_update("notes/json")) == "a room, not an export"
        async with httpx.AsyncClient() as http:
            r = await http.get(
                f"{srv.url}/api/rooms/notes/json?types=text:text",
                headers={"Authorization": f"Bearer {API_KEY}"},
            )
            assert r.json() == {"text": "the parent room"}


async def test_delete_closes_sockets_then_removes_the_document() -> None:
    store = MemoryStore()
    async with serve(store=store) as srv:
        a = api(srv)
        await a.edit_text("doomed", "content")
        client = YClient(f"{srv.ws_url}/doomed", reconnect=False)
        await client.start()
        await asyncio.wait_for(client.synced.wait(), 5)
        result = await a.delete_room("doomed")
        assert result == {"room": "doomed", "closed_here": 1, "deleted": True}
        await client.wait_closed(5)
        assert client.close_code == 4404
        assert await store.load("doomed") is None
        await wait_until(lambda: "doomed" not in srv.app.state.collab.rooms, timeout=5)
        with pytest.raises(ApiError) as gone:
            await a.get_json("doomed", {"text": "text"})
        assert gone.value.status == 404


async def test_connections_by_id_on_a_single_instance() -> None:
    async with serve() as srv, YClient(f"{srv.ws_url}/doc") as client:
        a = api(srv)
        [room] = (await a.rooms())["rooms"]
        [conn_id] = room["connections"]
        with pytest.raises(ApiError) as ywebsocket:
            await a.message_connection(conn_id, "hello")
        assert ywebsocket.value.status == 409
        with pytest.raises(ApiError) as unknown:
            await a.message_connection("c-000000-1", "hello")
        assert unknown.value.status == 404
        client.reconnect = False
        assert (await a.close_connection(conn_id, code=4403, reason="kicked"))["code"] == 4403
        await client.wait_closed(5)
        assert (client.close_code, client.close_reason) == (4403, "kicked")


async def test_openapi_document_is_valid_and_lists_every_route() -> None:
    from openapi_spec_validator import validate

    async with serve() as srv:
        async with httpx.AsyncClient() as http:  # public: no token needed
            r = await http.get(f"{srv.url}/api/openapi.json")
        doc = r.json()
        validate(doc)
        assert doc["openapi"] == "3.1.0"
        assert await ApiClient(f"{srv.url}/api", "no-token").openapi() == doc
        operations = {(path, method) for path, item in doc["paths"].items() for method in item}
        assert operations == {
            ("/api/rooms", "get"),
            ("/api/rooms/{room}", "get"),
            ("/api/rooms/{room}", "delete"),
            ("/api/rooms/{room}/json", "get"),
            ("/api/rooms/{room}/update", "post"),
            ("/api/rooms/{room}/text", "post"),
            ("/api/rooms/{room}/message", "post"),
            ("/api/rooms/{room}/connections", "delete"),
            ("/api/connections/{conn_id}/message", "post"),
            ("/api/connections/{conn_id}", "delete"),
        }


async def test_api_calls_are_counted_by_route_template_never_by_room_or_key() -> None:
    async with serve() as srv:
        a = api(srv)
        await a.edit_text("secret-room-name", "x")
        with pytest.raises(ApiError):
            await ApiClient(f"{srv.url}/api", "wrong-key-0000000000").rooms()
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{srv.url}/metrics")).text
        assert (
            'collab_api_requests_total{method="POST",route="/rooms/{room}/text",status="200"} 1.0'
        ) in metrics
        assert 'collab_api_requests_total{method="GET",route="/rooms",status="401"} 1.0' in metrics
        assert "secret-room-name" not in metrics and API_KEY not in metrics
        assert API_KEY not in repr(settings()) and API_KEY not in repr(a)


async def test_crafted_paths_and_bodies_get_json_errors() -> None:
    """A '/' encoded before the room cannot shift which room is acted on; a
    body nested deeper than the parser goes is a 400, not a 500."""
    async with serve() as srv, httpx.AsyncClient() as http:
        a = api(srv)
        await a.edit_text("team/notes", "SECRET-TEAM-NOTES")
        await a.edit_text("notes", "just notes")
        auth = {"Authorization": f"Bearer {API_KEY}"}
        sneaky = await http.get(
            f"{srv.url}/api/rooms%2Fteam/notes/json?types=text:text", headers=auth
        )
        assert sneaky.status_code == 400, sneaky.text
        assert "just notes" not in sneaky.text and "SECRET" not in sneaky.text
        deep = await http.post(
            f"{srv.url}/api/rooms/x/text",
            content=b"[" * 200_000,
            headers={**auth, "content-type": "application/json"},
        )
        assert deep.status_code == 400 and deep.json()["message"] == "the body is nested too deeply"
