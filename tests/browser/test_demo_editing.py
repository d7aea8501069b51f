"""Two people in one room, one per protocol, in real Chromium (issue 16).

Page A speaks y-websocket, page H Hocuspocus (on ``/hocuspocus/{room}``, so
the any-path routing is exercised by a real provider in a real browser). They
type at the same time on two lines; both end with the same text, and each
shows the other's cursor with the other's name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.support.jsclient import JSClient
from tests.support.servers import run_collab

from .browser import DemoPage, side_by_side

pytestmark = pytest.mark.anyio

ENV = {"COLLAB_STORE_URL": "memory://"}


async def test_two_protocols_type_concurrently_and_see_each_other(
    tmp_path: Path, browser: Browser, artifact: Callable[[str], Path]
) -> None:
    async with run_collab(tmp_path, env=ENV, args=["--demo"]) as srv:
        room = f"{srv.url}/demo/team/notes"
        a = await DemoPage.open(browser, room, name="Ada (y-websocket)")
        h = await DemoPage.open(browser, room + "?provider=hocuspocus", name="Hal (Hocuspocus)")
        assert "y-websocket provider" in await a.page.inner_text("aside")
        assert f"{srv.ws_url}/hocuspocus/team/notes" in await h.page.inner_text("aside")

        # Two lines to type on, so that concurrent keystrokes stay in their line.
        await a.type_at_line(1, "A:\nH:", delay_ms=0)
        await h.wait_text("A:\nH:")
        await asyncio.gather(
            a.type_at_line(1, " Ada types over y-websocket"),
            h.type_at_line(2, " Hal types over Hocuspocus"),
        )
        expected = "A: Ada types over y-websocket\nH: Hal types over Hocuspocus"
        await a.wait_text(expected)
        await h.wait_text(expected)

        # Each sees the other's caret, labelled with the other's name, and in the list.
        await a.wait_remote_cursor("Hal (Hocuspocus)")
        await h.wait_remote_cursor("Ada (y-websocket)")
        assert await a.remote_names() == ["Hal (Hocuspocus)"]
        assert await h.remote_names() == ["Ada (y-websocket)"]
        assert sorted(await a.people()) == ["Ada (y-websocket) (you)", "Hal (Hocuspocus)"]
        assert sorted(await h.people()) == ["Ada (y-websocket)", "Hal (Hocuspocus) (you)"]

        # A renamed person is renamed on the other page too (awareness): in the
        # list at once, and over the caret once it moves (y-codemirror.next
        # keeps a caret's label while only the name changed).
        await h.page.fill("#name", "Hal 9000")
        await a.page.wait_for_function(
            "() => [...document.querySelectorAll('#people .person')]"
            ".some((e) => e.textContent === 'Hal 9000')",
            timeout=15_000,
        )
        await h.page.focus(".cm-content")
        await h.page.keyboard.press("ArrowLeft")
        await a.wait_remote_cursor("Hal 9000")

        # The server holds the same text: a Node client that joins now reads it.
        async with JSClient.start(tmp_path) as js:
            await js.call("connect", handle="late", url=srv.ws_url, room="team/notes")
            assert await js.call("text", handle="late") == expected

        await h.page.fill("#name", "Hal (Hocuspocus)")
        await h.page.focus(".cm-content")
        await h.page.keyboard.press("End")
        await a.wait_remote_cursor("Hal (Hocuspocus)")
        shots = [await a.screenshot(tmp_path / "a.png"), await h.screenshot(tmp_path / "h.png")]
        out = await side_by_side(browser, *shots, artifact("demo-two-pages.png"))
        assert out.stat().st_size > 10_000
        for status in (await a.status(), await h.status()):
            assert "connected · synced" in status
        await a.close()
        await h.close()
