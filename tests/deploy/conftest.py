"""The container image, built once per session from the Dockerfile
(tests/support/image.py), for the tests that run it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support.image import BuiltImage, build_image, mounted, remove_image
from .artifacts import REPO
from .imagerun import REPORT_DIR, base_ref, session_tag, write_report

_REPORT = pytest.StashKey[dict[str, Any]]()


@pytest.fixture(scope="session")
def built_image(request: pytest.FixtureRequest) -> Iterator[BuiltImage]:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    log = REPORT_DIR / "build.log"
    log.write_text("")
    tag = session_tag()
    built = build_image(REPO, tag, log, base_ref=base_ref())
    request.config.stash[_REPORT] = write_report(built)
    try:
        yield built
    finally:
        # The latest build stays inspectable as collab:test; the layers stay
        # as the build cache.
        remove_image(tag, keep_as="localhost/collab:test")


@pytest.fixture(scope="session")
def image_root(built_image: BuiltImage) -> Iterator[Path]:
    """The image's file system (``podman image mount``), read-only."""
    with mounted(built_image.tag) as root:
        yield root


@pytest.fixture(scope="session")
def base_root(built_image: BuiltImage) -> Iterator[Path]:
    """The base image's file system (the stand-in, or the real one)."""
    with mounted(built_image.base.ref) as root:
        yield root


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    report = config.stash.get(_REPORT, None)
    if report is None:
        return
    base = "stand-in" if report["base_is_stand_in"] else "pulled"
    terminalreporter.write_sep("-", "container image")
    terminalreporter.write_line(
        f"collab image {report['size_mb']} MB ({report['size_bytes']} bytes): base "
        f"{report['base']} ({base}) {report['base_size_bytes'] / 1e6:.1f} MB + "
        f"{report['added_by_dockerfile_bytes'] / 1e6:.1f} MB from the Dockerfile; "
        f"built in {report['build_seconds']} s"
        + (f" after {report['base_seconds']} s for the base" if report["base_built_now"] else "")
        + f"; {REPORT_DIR.relative_to(REPO)}/report.json"
    )
