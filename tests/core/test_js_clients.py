"""Real JavaScript Yjs clients (yjs + y-websocket's WebsocketProvider) with a
Python pycrdt client, against `collab serve` on a loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest

from collab.client import YClient
from tests.support.jsclient import JSClient
from tests.support.servers import run_collab

pytestmark = pytest.mark.anyio


async def test_two_js_clients_and_a_python_client_converge(tmp_path: Path) -> None:
    env = {"COLLAB_STORE_URL": f"sqlite:///{tmp_path / 'js.sqlite3'}"}
    async with run_collab(tmp_path, env=env) as srv, JSClient.start(tmp_path) as js:
        room = "projects/alpha"
        await js.call("connect", handle="a", url=srv.ws_url, room=room)
        await js.call("connect", handle="b", url=srv.ws_url, room=room)
        async with YClient(f"{srv.ws_url}/{room}") as py:
            # concurrent edits from all three
            await js.call("insert", handle="a", index=0, text="[js-a]")
            await js.call("insert", handle="b", index=0, text="[js-b]")
            py.text().insert(0, "[py]")
            parts = ["[js-a]", "[js-b]", "[py]"]
            final_a = await js.call("wait_text", handle="a", contains=parts, timeout_ms=10000)
            final_b = await js.call("wait_text", handle="b", contains=parts, timeout_ms=10000)
            await py.wait_for(lambda c: all(p in str(c.text()) for p in parts), 10)
            assert final_a == final_b == str(py.text())
        # a late JS joiner gets the whole document
        await js.call("connect", handle="late", url=srv.ws_url, room=room)
        assert await js.call("text", handle="late") == final_a


async def test_js_awareness_appears_and_disappears_when_its_socket_closes(tmp_path: Path) -> None:
    async with (
        run_collab(tmp_path, env={"COLLAB_STORE_URL": "memory://"}) as srv,
        JSClient.start(tmp_path) as js,
    ):
        await js.call("connect", handle="a", url=srv.ws_url, room="cursors")
        await js.call("connect", handle="b", url=srv.ws_url, room="cursors")
        await js.call("set_awareness", handle="a", field="user", value={"name": "ada"})
        await js.call("wait_awareness", handle="b", path="user.name", value="ada", timeout_ms=5000)
        async with YClient(f"{srv.ws_url}/cursors") as py:
            await py.wait_for(
                lambda c: any(s.get("user", {}).get("name") == "ada" for s in c.awareness.values()),
                5,
            )
            # SIGKILL-like: the JS socket is terminated without a removal message
            await js.call("terminate", handle="a")
            await js.call(
                "wait_awareness",
                handle="b",
                path="user.name",
                value="ada",
                present=False,
                timeout_ms=5000,
            )
            await py.wait_for(
                lambda c: (
                    not any(s.get("user", {}).get("name") == "ada" for s in c.awareness.values())
                ),
                5,
            )
