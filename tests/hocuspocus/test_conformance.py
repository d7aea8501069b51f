"""One script, two servers: collab's Hocuspocus endpoint and the real
@hocuspocus/server 3.x (tests/js/hocuspocus-server.mjs) must show the same
observable behaviour to the real provider 4.x — sync, awareness, auth denial,
read-only scope, stateless messages, closing a document — and the same bytes
for the frames both produce deterministically.

Both servers run the same rules (see ``helpers.Rules``). Where they differ on
purpose, the difference is documented in docs/hocuspocus.md, not tested here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from collab.wire import hocuspocus as hp
from tests.support.jsclient import JSClient, JSClientError, run_hocuspocus_server

from .helpers import Raw, serve, update_inserting

pytestmark = pytest.mark.anyio

T = 10_000
SERVERS = ["collab", "hocuspocus-3"]


@asynccontextmanager
async def hocuspocus_url(which: str, tmp_path: Path) -> AsyncIterator[str]:
    if which == "collab":
        async with serve() as srv:
            yield srv.hp_url
    else:
        async with run_hocuspocus_server(tmp_path) as ref:
            assert ref.version.startswith("3."), ref.version
            yield ref.url


@pytest.fixture(params=SERVERS)
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    async with hocuspocus_url(request.param, tmp_path) as u:
        yield u


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path) as client:
        yield client


async def test_sync_and_awareness(js: JSClient, url: str) -> None:
    await js.call("connect_hocuspocus", handle="a", url=url, name="conf/sync")
    await js.call("connect_hocuspocus", handle="b", url=url, name="conf/sync")
    await js.call("insert", handle="a", text="A;")
    await js.call("wait_text", handle="b", equals="A;", timeout_ms=T)
    await js.call("insert", handle="b", text="B;")
    await js.call("wait_text", handle="a", equals="A;B;", timeout_ms=T)
    for handle in ("a", "b"):
        await js.call("wait_synced", handle=handle, acked=True, timeout_ms=T)
    await js.call("set_awareness", handle="a", field="user", value={"name": "Ann"})
    await js.call("wait_awareness", handle="b", value="Ann", timeout_ms=T)
    await js.call("set_awareness", handle="b", field="user", value={"name": "Bob"})
    await js.call("wait_awareness", handle="a", value="Bob", timeout_ms=T)
    # A late joiner gets the document and the cursors.
    await js.call("connect_hocuspocus", handle="c", url=url, name="conf/sync")
    assert await js.call("text", handle="c") == "A;B;"
    await js.call("wait_awareness", handle="c", value="Bob", timeout_ms=T)
    # A provider that leaves takes its cursor with it.
    await js.call("disconnect", handle="a")
    await js.call("wait_awareness", handle="b", value="Ann", present=False, timeout_ms=T)


async def test_auth_denial_spares_the_other_documents(js: JSClient, url: str) -> None:
    await js.call("hocuspocus_socket", socket="s", url=url)
    await js.call("connect_hocuspocus", handle="ok", socket="s", name="conf/ok")
    with pytest.raises(JSClientError) as info:
        await js.call(
            "connect_hocuspocus",
            handle="no",
            socket="s",
            name="conf/no",
            token="bad",
            keep_on_error=True,
            timeout_ms=T,
        )
    assert info.value.kind == "authenticationFailed"
    assert info.value.data["reason"] == "bad-token"
    await js.call("connect_hocuspocus", handle="ok2", url=url, name="conf/ok")
    await js.call("insert", handle="ok", text="alive")
    await js.call("wait_text", handle="ok2", equals="alive", timeout_ms=T)
    assert not js.events_for("ok", "close")


async def test_read_only(js: JSClient, url: str) -> None:
    await js.call("connect_hocuspocus", handle="w", url=url, name="conf/ro")
    await js.call("insert", handle="w", text="base")
    await js.call("wait_synced", handle="w", acked=True, timeout_ms=T)
    got = await js.call("connect_hocuspocus", handle="r", url=url, name="conf/ro", token="readonly")
    assert got["scope"] == "readonly"
    await js.call("wait_text", handle="r", equals="base", timeout_ms=T)
    await js.call("wait_synced", handle="r", acked=True, timeout_ms=T)
    await js.call("insert", handle="r", text="X", index=0)
    await js.call("send_stateless", handle="r", payload="echo:sync point")
    await js.event(event="stateless", handle="r", payload="echo:sync point")
    assert (await js.call("hocuspocus_state", handle="r"))["unsynced_changes"] == 1
    await js.call("connect_hocuspocus", handle="fresh", url=url, name="conf/ro")
    assert await js.call("text", handle="fresh") == "base"


async def test_stateless(js: JSClient, url: str) -> None:
    await js.call("connect_hocuspocus", handle="a", url=url, name="conf/st")
    await js.call("connect_hocuspocus", handle="b", url=url, name="conf/st")
    await js.call("send_stateless", handle="a", payload="echo:ping")
    await js.event(event="stateless", handle="a", payload="echo:ping")
    await js.call("send_stateless", handle="b", payload="broadcast:all")
    await js.event(event="stateless", handle="a", payload="all")
    await js.event(event="stateless", handle="b", payload="all")
    assert not [e for e in js.events_for("b", "stateless") if e["payload"] == "echo:ping"]


async def test_closing_one_document_keeps_the_socket(js: JSClient, url: str) -> None:
    await js.call("hocuspocus_socket", socket="s", url=url)
    await js.call("connect_hocuspocus", handle="one", socket="s", name="conf/one")
    await js.call("connect_hocuspocus", handle="two", socket="s", name="conf/two")
    await js.call("connect_hocuspocus", handle="watch", url=url, name="conf/two")
    await js.call("disconnect", handle="one")  # detach: a Close frame for conf/one
    await js.call("insert", handle="two", text="still syncing")
    await js.call("wait_text", handle="watch", equals="still syncing", timeout_ms=T)


async def test_deterministic_frames_are_byte_identical(url: str) -> None:
    async with Raw.connect(url) as raw:
        await raw.send(hp.encode_auth_token("conf/raw", "", "4.8.0"))
        assert await raw.next(lambda m: not isinstance(m, hp.Sync)) == hp.Authenticated(
            "conf/raw", "read-write"
        )
        await raw.send(hp.encode_auth_token("conf/denied", "bad", "4.8.0"))
        await raw.next(lambda m: isinstance(m, hp.PermissionDenied))
        await raw.send(hp.encode_auth_token("conf/ro", "readonly", "4.8.0"))
        await raw.next(lambda m: isinstance(m, hp.Authenticated) and m.address == "conf/ro")
        await raw.send(
            hp.encode_update("conf/raw", update_inserting("x")),
            hp.encode_update("conf/ro", update_inserting("y")),
            hp.encode_stateless("conf/raw", "echo:done"),
        )
        await raw.next(lambda m: isinstance(m, hp.Stateless))
        wanted = (hp.Authenticated, hp.PermissionDenied, hp.SyncStatus, hp.Stateless)
        assert [m for m in raw.seen if isinstance(m, wanted)] == [
            hp.Authenticated("conf/raw", "read-write"),
            hp.PermissionDenied("conf/denied", "bad-token"),
            hp.Authenticated("conf/ro", "readonly"),
            hp.SyncStatus("conf/raw", True),
            hp.SyncStatus("conf/ro", False),
            hp.Stateless("conf/raw", "echo:done"),
        ]
