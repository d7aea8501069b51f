"""Built-in JWT auth, end to end: `collab serve` with COLLAB_JWT_SECRET, real JS
y-websocket and Hocuspocus providers carrying tokens minted in Node (and in
Python), and logs that never hold a token."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import websockets

from collab.access.tokens import LEEWAY_SECONDS
from collab.client import YClient
from collab.wire import ywebsocket as p
from tests.support.jsclient import JSClient, JSClientError
from tests.support.servers import CollabProcess, run_collab
from tests.support.tokens import TEST_SECRET, mint
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio

ENV = {
    "COLLAB_STORE_URL": "memory://",
    "COLLAB_JWT_SECRET": TEST_SECRET,
    "COLLAB_LOG_LEVEL": "debug",
}


@asynccontextmanager
async def jwt_server(tmp_path: Path, **extra: str) -> AsyncIterator[tuple[CollabProcess, JSClient]]:
    async with run_collab(tmp_path, env={**ENV, **extra}) as srv, JSClient.start(tmp_path) as js:
        yield srv, js


async def node_token(js: JSClient, **claims: Any) -> str:
    expires = claims.pop("expires_in_s", 300)
    token: str = await js.call("mint", secret=TEST_SECRET, claims=claims, expires_in_s=expires)
    return token


async def close_of(js: JSClient, handle: str) -> dict[str, Any]:
    event = await js.event(
        lambda e: e["event"] == "close" and e["handle"] == handle and e.get("code") is not None,
        timeout=10,
    )
    return event


async def test_y_websocket_tokens_accepted_expired_wrong_room_readonly(tmp_path: Path) -> None:
    async with jwt_server(tmp_path) as (srv, js):
        writer = await node_token(js, rooms=["team/*"])
        await js.call(
            "connect", handle="w", url=srv.ws_url, room="team/notes", params={"token": writer}
        )
        viewer = await node_token(js, rooms=["team/**"], readonly=True)
        await js.call(
            "connect", handle="v", url=srv.ws_url, room="team/notes", params={"token": viewer}
        )
        # read-only: the viewer's edit is not applied, the writer's reaches it
        await js.call("insert", handle="v", index=0, text="[viewer]")
        await js.call("insert", handle="w", index=0, text="[writer]")
        await js.call("wait_text", handle="v", contains="[writer]", timeout_ms=5000)
        async with YClient(f"{srv.ws_url}/team/notes", token=writer) as py:
            await py.wait_for(lambda c: "[writer]" in str(c.text()), 5)
            assert "[viewer]" not in str(py.text())
        assert "[viewer]" not in await js.call("text", handle="w")

        expired = await node_token(js, rooms=["team/*"], expires_in_s=-(LEEWAY_SECONDS + 60))
        await js.call(
            "connect",
            handle="x",
            url=srv.ws_url,
            room="team/notes",
            params={"token": expired},
            wait=False,
            reconnect=False,
        )
        close = await close_of(js, "x")
        assert (close["code"], close["reason"]) == (4401, "token expired")

        await js.call(
            "connect", handle="m", url=srv.ws_url, room="team/notes", wait=False, reconnect=False
        )
        close = await close_of(js, "m")
        assert (close["code"], close["reason"]) == (4401, "token missing")

        await js.call(
            "connect",
            handle="o",
            url=srv.ws_url,
            room="other/notes",
            params={"token": writer},
            wait=False,
            reconnect=False,
        )
        close = await close_of(js, "o")
        assert (close["code"], close["reason"]) == (4403, "token does not grant this room")

        # a token signed with another key
        forged = mint("another-secret-that-is-long-enough-0123456789", rooms=["team/*"])
        await js.call(
            "connect",
            handle="f",
            url=srv.ws_url,
            room="team/notes",
            params={"token": forged},
            wait=False,
            reconnect=False,
        )
        assert (await close_of(js, "f"))["code"] == 4401

        # the token as the last subprotocol offered (browsers cannot set headers)
        async with websockets.connect(
            f"{srv.ws_url}/team/notes", subprotocols=["collab", writer]
        ) as ws:  # type: ignore[list-item]
            assert p.decode_message(await ws.recv()) is not None
            assert ws.subprotocol == "collab"

        log = srv.log_text()
        # `collab serve` answers handshakes itself (transport.fast): no
        # websockets debug trace of the headers; any trace there is, is masked.
        assert "Sec-WebSocket-Protocol: " not in log.replace("Sec-WebSocket-Protocol: ***", "")
        for token in (writer, viewer, expired, forged):
            assert token not in log
        assert "authentication denied" in log


async def test_hocuspocus_tokens_per_document(tmp_path: Path) -> None:
    async with jwt_server(tmp_path) as (srv, js):
        url = f"{srv.ws_url}/hocuspocus"
        writer = await node_token(js, rooms=["team/*"])
        viewer = await node_token(js, rooms=["team/*"], readonly=True)
        ok = await js.call("connect_hocuspocus", handle="w", url=url, name="team/doc", token=writer)
        assert ok["scope"] == "read-write"
        ro = await js.call("connect_hocuspocus", handle="v", url=url, name="team/doc", token=viewer)
        assert ro["scope"] == "readonly"
        await js.call("insert", handle="v", index=0, text="[viewer]")
        await js.call("insert", handle="w", index=0, text="[writer]")
        await js.call("wait_text", handle="v", contains="[writer]", timeout_ms=5000)
        assert "[viewer]" not in await js.call("text", handle="w")

        expired = await node_token(js, rooms=["team/*"], expires_in_s=-(LEEWAY_SECONDS + 60))
        with pytest.raises(JSClientError) as denied:
            await js.call(
                "connect_hocuspocus",
                handle="x",
                url=url,
                name="team/doc",
                token=expired,
                timeout_ms=5000,
            )
        assert denied.value.kind == "authenticationFailed"
        assert denied.value.data["reason"] == "token expired"
        with pytest.raises(JSClientError) as forbidden:
            await js.call(
                "connect_hocuspocus",
                handle="o",
                url=url,
                name="other/doc",
                token=writer,
                timeout_ms=5000,
            )
        assert forbidden.value.data["reason"] == "token does not grant this room"
        assert writer not in srv.log_text() and expired not in srv.log_text()


async def test_hocuspocus_expiry_blocks_new_documents_until_a_fresh_token(tmp_path: Path) -> None:
    """A socket outlives its token: documents it opens after the expiry are
    denied, and a new auth message with a fresh token opens them."""
    async with jwt_server(tmp_path) as (srv, js):
        url = f"{srv.ws_url}/hocuspocus"
        short = mint(TEST_SECRET, rooms=["team/*"], expires_in=1)
        expires_at = time.time() + 1 + LEEWAY_SECONDS
        await js.call("hocuspocus_socket", socket="s", url=url)
        await js.call(
            "connect_hocuspocus", handle="a", url=url, socket="s", name="team/a", token=short
        )
        # The token's lifetime is wall-clock time: nothing to await but the clock.
        await wait_until(
            lambda: time.time() > expires_at,
            timeout=LEEWAY_SECONDS + 10,
            what="the token to expire",
        )
        with pytest.raises(JSClientError) as denied:
            await js.call(
                "connect_hocuspocus",
                handle="b",
                url=url,
                socket="s",
                name="team/b",
                token=short,
                timeout_ms=5000,
            )
        assert denied.value.data["reason"] == "token expired"
        fresh = mint(TEST_SECRET, rooms=["team/*"])
        await js.call(
            "connect_hocuspocus", handle="b2", url=url, socket="s", name="team/b", token=fresh
        )
        # the document opened before the expiry still syncs on the same socket
        await js.call("insert", handle="a", index=0, text="still open")
        await js.call("connect_hocuspocus", handle="a2", url=url, name="team/a", token=fresh)
        await js.call("wait_text", handle="a2", equals="still open", timeout_ms=5000)


async def test_a_custom_hook_runs_after_the_jwt_check(tmp_path: Path) -> None:
    env = {"COLLAB_HOOKS": "tests.core.jwt_hooks_fixture:hooks"}
    async with jwt_server(tmp_path, **env) as (srv, js):
        token = await node_token(js, rooms=["**"])
        # a bad token never reaches the hook: the JWT check refuses it first
        await js.call(
            "connect",
            handle="b",
            url=srv.ws_url,
            room="doc",
            params={"token": "not-a-jwt"},
            wait=False,
            reconnect=False,
        )
        assert (await close_of(js, "b"))["code"] == 4401
        # a good one does, and the hook may still deny or make it read-only
        await js.call(
            "connect",
            handle="l",
            url=srv.ws_url,
            room="locked",
            params={"token": token},
            wait=False,
            reconnect=False,
        )
        close = await close_of(js, "l")
        assert (close["code"], close["reason"]) == (4403, "locked by the application")
        await js.call(
            "connect", handle="w", url=srv.ws_url, room="archive", params={"token": token}
        )
        await js.call("insert", handle="w", index=0, text="nope")
        async with YClient(f"{srv.ws_url}/archive", token=token) as py:
            await py.wait_for(lambda c: c.synced.is_set(), 5)
            await js.call(
                "connect", handle="w2", url=srv.ws_url, room="archive", params={"token": token}
            )
            assert await js.call("text", handle="w2") == ""
