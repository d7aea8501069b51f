"""The demo page against a server that checks tokens (an authenticate hook,
tests/core/hooks_fixture.py: no token -> 4401 "a token is required", "writer"
allowed, any other token -> 4403).

The page reads ``/demo/_/config.json``; with a hook configured it shows the
token field. Over y-websocket a denial is a close (4401/4403 and the hook's
reason, in words, no retry); over Hocuspocus it is a PermissionDenied message
on an open socket, shown with its reason. A good token then connects.

With built-in JWT auth (COLLAB_JWT_SECRET), an expired token shows 4401 and
the server's reason in the panel, and a fresh token connects.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from collab.access.tokens import LEEWAY_SECONDS
from tests.support.servers import run_collab
from tests.support.tokens import TEST_SECRET, mint

from .browser import DemoPage, reason_in

pytestmark = pytest.mark.anyio

ENV = {"COLLAB_STORE_URL": "memory://", "COLLAB_HOOKS": "tests.core.hooks_fixture:hooks"}


async def test_ywebsocket_shows_4401_then_4403_then_connects(
    tmp_path: Path, browser: Browser
) -> None:
    async with run_collab(tmp_path, env=ENV, args=["--demo"]) as srv:
        page = await DemoPage.open(browser, f"{srv.url}/demo/locked", name="Eve", synced=False)
        assert await page.page.is_visible("#token")
        entry = await page.wait_event("4401")
        assert "4401 not authorized" in entry
        assert reason_in(entry) == "a token is required"
        assert "Enter a token" in entry
        await page.wait_state("stopped")  # retrying cannot fix a missing token
        assert "not retrying" in await page.status()
        assert "last close: 4401 not authorized “a token is required”" in await page.status()

        await page.set_token("nope")
        entry = await page.wait_event("4403")
        assert "4403 forbidden" in entry
        assert reason_in(entry) == "token 'nope' may not open 'locked'"

        await page.set_token("writer")
        await page.wait_state("synced")
        await page.type_at_line(1, "let in", delay_ms=0)
        await page.wait_text("let in")
        await page.close()


async def test_hocuspocus_shows_the_denial_then_connects(tmp_path: Path, browser: Browser) -> None:
    async with run_collab(tmp_path, env=ENV, args=["--demo"]) as srv:
        url = f"{srv.url}/demo/locked?provider=hocuspocus"
        page = await DemoPage.open(browser, url, name="Eve", synced=False)
        entry = await page.wait_event("denied")
        assert "permission denied" in entry
        assert reason_in(entry) == "a token is required"
        assert "a denial is a message, not a close" in entry
        await page.wait_state("stopped")

        await page.set_token("writer")
        await page.wait_state("synced")
        await page.type_at_line(1, "let in over Hocuspocus", delay_ms=0)
        await page.wait_text("let in over Hocuspocus")
        await page.close()


async def test_no_token_field_without_auth(tmp_path: Path, browser: Browser) -> None:
    async with run_collab(tmp_path, env={"COLLAB_STORE_URL": "memory://"}, args=["--demo"]) as srv:
        page = await DemoPage.open(browser, f"{srv.url}/demo/open", name="Ann")
        assert not await page.page.is_visible("#token")
        await page.close()


async def test_jwt_expired_token_shows_4401_then_a_fresh_one_connects(
    tmp_path: Path, browser: Browser
) -> None:
    env = {"COLLAB_STORE_URL": "memory://", "COLLAB_JWT_SECRET": TEST_SECRET}
    async with run_collab(tmp_path, env=env, args=["--demo"]) as srv:
        page = await DemoPage.open(browser, f"{srv.url}/demo/team/notes", name="Eve", synced=False)
        assert await page.page.is_visible("#token")
        await page.set_token(mint(TEST_SECRET, rooms=["team/*"], expires_in=-(LEEWAY_SECONDS + 60)))
        entry = await page.wait_event("4401")
        assert "4401 not authorized" in entry
        assert reason_in(entry) == "token expired"
        await page.wait_state("stopped")

        await page.set_token(mint(TEST_SECRET, rooms=["team/*"]))
        await page.wait_state("synced")
        await page.type_at_line(1, "fresh token", delay_ms=0)
        await page.wait_text("fresh token")
        await page.close()
