"""The demo page through a server restart (SIGTERM) and a crash (SIGKILL).

One ``collab serve --demo`` on a fixed port and a SQLite file, two pages (one
per protocol). SIGTERM: after the drain the pages show 1001 with the server's
reason and "reconnecting in N s"; edits typed while the server is gone are
kept, and once a new process listens on the same port and file both pages
sync again and nothing is lost. SIGKILL: the pages show 1006 in words and
retry with a growing, jittered delay (the page's own backoff, see
demo/src/backoff.js) until the server is back.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.support.ports import free_port
from tests.support.servers import run_collab

from .browser import DemoPage, reason_in

pytestmark = pytest.mark.anyio

ROOM = "restart/notes"


def _env(tmp_path: Path) -> dict[str, str]:
    return {
        "COLLAB_STORE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "COLLAB_DRAIN_SECONDS": "0.5",
    }


async def _open_pair(browser: Browser, url: str) -> tuple[DemoPage, DemoPage]:
    a = await DemoPage.open(browser, f"{url}/demo/{ROOM}", name="Ada")
    h = await DemoPage.open(browser, f"{url}/demo/{ROOM}?provider=hocuspocus", name="Hal")
    return a, h


async def test_sigterm_shows_1001_reconnects_and_loses_nothing(
    tmp_path: Path, browser: Browser
) -> None:
    port = free_port()
    args = ["--demo"]
    async with run_collab(tmp_path, env=_env(tmp_path), args=args, port=port, name="first") as srv:
        a, h = await _open_pair(browser, srv.url)
        await a.type_at_line(1, "before the restart", delay_ms=0)
        await h.wait_text("before the restart")
        assert await srv.terminate() == 0, srv.log_text()

    for page in (a, h):
        entry = await page.wait_event("1001")
        assert "1001 server restarting" in entry
        # The reason exactly as the server sent it (collab/cli.py's drain).
        assert reason_in(entry) == "server shutting down", entry
        assert "reconnects by itself" in entry  # words, not just a number
        seen = await page.wait_status_seen(
            r"reconnecting in \d+\.\d s.*last close: 1001 server restarting “server shutting down”"
        )
        assert seen, await page.status_log()

    # Typed while no server runs: kept in the page, sent once it is back.
    await a.type_at_line(1, "; Ada offline", delay_ms=0)
    await h.type_at_line(1, "; Hal offline", delay_ms=0)
    assert await a.state() != "synced" and await h.state() != "synced"

    async with run_collab(tmp_path, env=_env(tmp_path), args=args, port=port, name="second") as srv:
        await a.wait_state("synced", timeout=30_000)
        await h.wait_state("synced", timeout=30_000)
        text = await a.text()
        assert text.startswith("before the restart"), text
        assert "; Ada offline" in text and "; Hal offline" in text, text
        await h.wait_text(text)
        # The server has it all: a third page that arrives now reads the same.
        late = await DemoPage.open(browser, f"{srv.url}/demo/{ROOM}", name="Late")
        await late.wait_text(text)
        # Both back with each other's cursors.
        await a.wait_remote_cursor("Hal")
        await h.wait_remote_cursor("Ada")
        for page in (a, h, late):
            await page.close()


async def test_sigkill_shows_1006_and_backs_off(tmp_path: Path, browser: Browser) -> None:
    port = free_port()
    args = ["--demo"]
    async with run_collab(tmp_path, env=_env(tmp_path), args=args, port=port, name="first") as srv:
        a, h = await _open_pair(browser, srv.url)
        await h.type_at_line(1, "written before the crash", delay_ms=0)
        await a.wait_text("written before the crash")
        killed_at = {p: await p.page.evaluate("Date.now()") for p in (a, h)}
        await srv.kill()

    for page in (a, h):
        entry = await page.wait_event("1006")
        assert "1006 connection lost" in entry
        assert "crashed or was killed" in entry
        await page.wait_status_seen(r"reconnecting in \d+\.\d s.*last close: 1006 connection lost")
    # While nobody listens every attempt fails again, each after a longer wait.
    for page in (a, h):
        await page.page.wait_for_function(
            "(t) => window.collabDemo.session.retries"
            ".filter((e) => e.at.getTime() >= t).length >= 4",
            arg=killed_at[page],
            timeout=20_000,
        )
    for page in (a, h):
        retries = [r for r in await page.retries() if r["at"] >= killed_at[page]][:4]
        assert len(retries) == 4
        # Exponential ceilings from the page's base (0.5 s), each delay jittered under its own.
        assert [r["ceiling"] for r in retries] == [0.5, 1.0, 2.0, 4.0], (
            retries,
            await page.events(),
        )
        for r in retries:
            assert r["ceiling"] / 2 <= r["delay"] <= r["ceiling"], r
        # And the page really waited that long between attempts.
        for before, after in itertools.pairwise(retries):
            assert after["at"] - before["at"] >= before["delay"] * 1000 - 50, retries
        # Every failed attempt is one more 1006, counted in one entry of the panel.
        lost = [e for e in await page.events() if e["code"] == "1006"]
        assert len(lost) == 1 and "1006 connection lost (\u00d7" in lost[0]["text"], lost
    await h.type_at_line(1, " and after it", delay_ms=0)

    async with run_collab(tmp_path, env=_env(tmp_path), args=args, port=port, name="second"):
        # The attempt due next may be up to 8 s away (the fifth ceiling).
        await a.wait_state("synced", timeout=30_000)
        await h.wait_state("synced", timeout=30_000)
        await a.wait_text("written before the crash and after it")
        await h.wait_text("written before the crash and after it")
        for page in (a, h):
            await page.close()
