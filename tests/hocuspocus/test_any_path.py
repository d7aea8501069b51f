"""Hocuspocus clients on any path under COLLAB_HOCUSPOCUS_PATH (issue 16).

The Hocuspocus server accepts its clients on any path, and users put the
document in the URL (``ws://host/hocuspocus/doc``). Before, such a client
landed in a y-websocket room named ``hocuspocus/doc`` and failed with
protocol errors. The real @hocuspocus/provider on sub-paths, next to a
y-websocket client of the same room.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.jsclient import JSClient

from .helpers import PATH, serve, settings

pytestmark = pytest.mark.anyio

T = 10_000  # ms


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path) as client:
        yield client


@pytest.mark.parametrize("suffix", ["/notes/1", "/", "/some/other/path"])
async def test_provider_on_a_sub_path(js: JSClient, suffix: str) -> None:
    async with serve() as srv:
        got = await js.call(
            "connect_hocuspocus", handle="h", url=srv.hp_url + suffix, name="notes/1", timeout_ms=T
        )
        assert got["scope"] == "read-write"
        await js.call("connect", handle="y", url=srv.ws_url, room="notes/1")
        await js.call("insert", handle="h", text="over a sub-path;")
        await js.call("wait_text", handle="y", equals="over a sub-path;", timeout_ms=T)
        await js.call("insert", handle="y", text="back;")
        await js.call("wait_text", handle="h", equals="over a sub-path;back;", timeout_ms=T)
        # The document is named by the frames, not by the URL: no room for the path.
        assert sorted(srv.collab.rooms) == ["notes/1"]
        paths = [c.path for c in srv.collab.connections.values()]
        # (The provider drops a trailing slash.)
        assert sorted(paths) == sorted([(PATH + suffix).rstrip("/"), "/notes/1"])


async def test_custom_hocuspocus_path_with_a_sub_path(js: JSClient) -> None:
    async with serve(settings(hocuspocus_path="/collab/hp")) as srv:
        url = srv.app.ws_url + "/collab/hp/doc"
        await js.call("connect_hocuspocus", handle="h", url=url, name="doc", timeout_ms=T)
        await js.call("connect", handle="y", url=srv.ws_url, room="doc")
        await js.call("insert", handle="y", text="custom path")
        await js.call("wait_text", handle="h", equals="custom path", timeout_ms=T)
