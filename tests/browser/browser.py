"""Debian's Chromium driven by Playwright for Python, and the demo page as an object.

Playwright is used with ``executable_path`` of the system Chromium
(``apt-get install chromium``, see scripts/install-test-deps.sh): it never
downloads a browser of its own (no ``playwright install``). Every wait has a
timeout; a JavaScript error on a page fails the test that caused it.

Usage::

    async with chromium() as browser:
        page = await DemoPage.open(browser, f"{srv.url}/demo/notes", name="Ada")
        await page.type_at_line(1, "hello")
        await page.wait_text("hello")
"""

from __future__ import annotations

import re
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, Page, async_playwright

__all__ = ["DemoPage", "chromium", "chromium_path", "side_by_side"]

MS = 15_000  # default wait, in ms
_CANDIDATES = ("chromium", "chromium-browser")
_INSTALL_HINT = "run scripts/install-test-deps.sh (installs Debian's chromium)"


def chromium_path() -> str:
    for name in _CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    raise RuntimeError(f"no Chromium on PATH; {_INSTALL_HINT}")


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


# Installed in a page by the tests, not by the demo: every text the status line
# showed, so a state that lasted a moment ("reconnecting in 0.4 s") is not
# missed by a test that looks a moment later.
_STATUS_LOG = """() => {
  window.__statusLog = [document.getElementById('status').innerText]
  new MutationObserver(() => {
    const text = document.getElementById('status').innerText
    if (window.__statusLog.at(-1) !== text) window.__statusLog.push(text)
  }).observe(document.getElementById('status'),
             { subtree: true, childList: true, characterData: true, attributes: true })
}"""


class DemoPage:
    """One tab of the demo page (its own browser context: its own person)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    @classmethod
    async def open(
        cls, browser: Browser, url: str, *, name: str | None = None, synced: bool = True
    ) -> DemoPage:
        context = await browser.new_context(viewport={"width": 1000, "height": 560})
        demo = cls(await context.new_page())
        await demo.page.goto(url)
        await demo.page.wait_for_function("() => window.collabDemo !== undefined", timeout=MS)
        await demo.page.evaluate(_STATUS_LOG)
        if name is not None:
            await demo.page.fill("#name", name)
        if synced:
            await demo.wait_state("synced")
        return demo

    async def close(self) -> None:
        await self.page.context.close()
        assert not self.errors, f"JavaScript errors on the page: {self.errors}"

    # -- what a person sees ------------------------------------------------
    async def state(self) -> str:
        return await self.page.get_attribute("#status", "data-state") or ""

    async def wait_state(self, state: str, timeout: float = MS) -> None:
        try:
            await self.page.wait_for_selector(f'#status[data-state="{state}"]', timeout=timeout)
        except Exception as exc:
            raise AssertionError(
                f"status never {state!r}: {await self.status()!r}; seen {await self.status_log()}"
            ) from exc

    async def status(self) -> str:
        return await self.page.inner_text("#status")

    async def status_log(self) -> list[str]:
        return list(await self.page.evaluate("() => window.__statusLog"))

    async def wait_status_seen(self, pattern: str, timeout: float = MS) -> str:
        """The first status text matching the regex ``pattern`` (``.`` matches a
        newline too), seen so far or later."""
        try:
            handle = await self.page.wait_for_function(
                "(p) => window.__statusLog.find((t) => new RegExp(p, 's').test(t))",
                arg=pattern,
                timeout=timeout,
            )
        except Exception as exc:
            log = await self.status_log()
            raise AssertionError(
                f"no status matched {pattern!r}; the first and last seen: {log[:5]} ... {log[-5:]}"
            ) from exc
        return str(await handle.json_value())

    async def events(self) -> list[dict[str, str]]:
        """The "what happened" panel, newest first: code (or "denied") and the text."""
        return list(
            await self.page.eval_on_selector_all(
                "#events .event", "els => els.map(e => ({code: e.dataset.code, text: e.innerText}))"
            )
        )

    async def wait_event(self, code: str, timeout: float = MS) -> str:
        await self.page.wait_for_selector(f'#events .event[data-code="{code}"]', timeout=timeout)
        return await self.page.inner_text(f'#events .event[data-code="{code}"] >> nth=0')

    async def editor_text(self) -> str:
        """The editor's lines without the carets drawn into them, joined by newlines."""
        lines = await self.page.eval_on_selector_all(
            ".cm-content .cm-line",
            "els => els.map(e => { const c = e.cloneNode(true);"
            " c.querySelectorAll('.cm-ySelectionCaret').forEach((x) => x.remove());"
            " return c.textContent })",
        )
        return "\n".join(lines)

    async def wait_text(self, expected: str, timeout: float = MS) -> None:
        try:
            await self.page.wait_for_function(
                "(t) => window.collabDemo.text() === t", arg=expected, timeout=timeout
            )
        except Exception as exc:
            raise AssertionError(f"text never {expected!r}: {await self.text()!r}") from exc
        assert await self.editor_text() == expected

    async def remote_names(self) -> list[str]:
        """Names drawn over the remote cursors in the editor."""
        return list(
            await self.page.eval_on_selector_all(
                ".cm-ySelectionInfo", "els => els.map(e => e.textContent)"
            )
        )

    async def wait_remote_cursor(self, name: str, timeout: float = MS) -> None:
        await self.page.wait_for_function(
            "(n) => [...document.querySelectorAll('.cm-ySelectionInfo')]"
            ".some((e) => e.textContent === n && e.getBoundingClientRect().width > 0"
            " && getComputedStyle(e).opacity === '1')",
            arg=name,
            timeout=timeout,
        )

    async def people(self) -> list[str]:
        return [
            t.strip()
            for t in await self.page.eval_on_selector_all(
                "#people .person", "els => els.map(e => e.textContent)"
            )
        ]

    # -- what a person does ------------------------------------------------
    async def type_at_line(self, line: int, text: str, delay_ms: float = 15) -> None:
        """Put the caret at the end of ``line`` (1-based) and type ``text``."""
        await self.page.click(".cm-content")
        await self.page.keyboard.press("Control+Home")
        for _ in range(line - 1):
            await self.page.keyboard.press("ArrowDown")
        await self.page.keyboard.press("End")
        await self.page.keyboard.type(text, delay=delay_ms)

    async def set_token(self, token: str) -> None:
        await self.page.fill("#token", token)
        await self.page.click("#auth button[type=submit]")

    # -- test-only look inside ---------------------------------------------
    async def text(self) -> str:
        return str(await self.page.evaluate("() => window.collabDemo.text()"))

    async def retries(self) -> list[dict[str, Any]]:
        """The reconnects the page scheduled, oldest first: attempt, ceiling, delay (s)."""
        events = await self.page.evaluate(
            "() => window.collabDemo.session.retries"
            ".map((e) => ({attempt: e.attempt, ceiling: e.ceiling, delay: e.delay,"
            " at: e.at.getTime()}))"
        )
        return list(reversed(events))

    async def screenshot(self, path: Path) -> Path:
        await self.page.screenshot(path=str(path))
        return path


async def side_by_side(browser: Browser, left: Path, right: Path, out: Path) -> Path:
    """One PNG of two screenshots next to each other (drawn by the browser
    itself: no image library needed)."""
    import base64

    def src(p: Path) -> str:
        return "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()

    context = await browser.new_context(viewport={"width": 2016, "height": 560})
    try:
        page = await context.new_page()
        await page.set_content(
            "<body style='margin:0;background:#9aa3ae;display:flex;gap:16px'>"
            f"<img src='{src(left)}'><img src='{src(right)}'></body>"
        )
        await page.wait_for_function("() => [...document.images].every(i => i.complete)")
        await page.screenshot(path=str(out))
    finally:
        await context.close()
    return out


def reason_in(text: str) -> str | None:
    """The reason the panel quotes ("server said: “...”")."""
    match = re.search(r"server said: “(.*)”", text)
    return match.group(1) if match else None
