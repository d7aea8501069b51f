from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Browser

from .browser import chromium

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "browser"
_made: list[Path] = []


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as b:
        yield b


@pytest.fixture
def artifact() -> Callable[[str], Path]:
    """A path under test-artifacts/browser/ (kept after the run, git-ignored),
    listed at the end of the run's output."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def make(name: str) -> Path:
        path = ARTIFACTS / name
        _made.append(path)
        return path

    return make


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for path in _made:
        if path.exists():
            terminalreporter.write_line(f"test artifact: {path}")
