"""The built image, run the way a container engine would run it
(tests/support/container.py), with ``ServerProcess`` on the host side.

The session builds the image once (``built_image`` in conftest.py); each test
gets its own containers: a fresh container layer over the same read-only
image mount, its own network namespace, the image's port published on a free
loopback port of the host.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from ..support.container import ContainerConfig, Sandbox, Volume, container_config
from ..support.image import BuiltImage
from .artifacts import REPO, image
from .serverproc import ServerProcess

REPORT_DIR = REPO / "build" / "image"
# A cold machine debootstraps the stand-in base (about a minute) and builds
# the image with an empty layer cache (about another one) inside the first
# test that asks for it; pytest's default 300 s is too tight for a slow mirror.
IMAGE_TIMEOUT = pytest.mark.timeout(900)


def base_ref() -> str:
    bases = {stage.base for stage in image().stages}
    assert len(bases) == 1, f"the stages use different bases: {bases}"
    return bases.pop()


def session_tag() -> str:
    """A tag of this session's own: concurrent runs on one machine never
    build over each other's image."""
    return f"localhost/collab:test-{os.getpid()}-{secrets.token_hex(3)}"


def exposed_port(built: BuiltImage) -> int:
    ports = sorted(built.config.get("ExposedPorts") or {})
    assert len(ports) == 1 and ports[0].endswith("/tcp"), ports
    return int(ports[0].split("/")[0])


def write_report(built: BuiltImage) -> dict[str, Any]:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    report = built.report()
    (REPORT_DIR / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    return report


@contextmanager
def container(
    built: BuiltImage,
    lower: Path,
    state: Path,
    *,
    hostname: str = "collab",
    volumes: Sequence[Volume] = (),
    reach: dict[int, int] | None = None,
    hosts: dict[str, str] | None = None,
) -> Iterator[Sandbox]:
    """A running sandbox for ``built`` with its exposed port published."""
    box = Sandbox(
        built,
        lower,
        state,
        hostname=hostname,
        volumes=list(volumes),
        publish=[exposed_port(built)],
        reach=dict(reach or {}),
        hosts=dict(hosts or {}),
    )
    with box:
        yield box


def server(
    box: Sandbox, config: ContainerConfig, log_path: Path, argv: Sequence[str] | None = None
) -> ServerProcess:
    """The container's main process (``config.argv`` unless ``argv``) as a
    ServerProcess reached through the published port."""
    port = box.host_port(exposed_port(box.image))
    return ServerProcess(box.exec_argv(argv or config.argv, config), {}, port, box.state, log_path)


def default_config(built: BuiltImage) -> ContainerConfig:
    """``docker run IMAGE``: everything from the image."""
    return container_config(built)
