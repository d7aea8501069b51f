"""The authenticate hook (query token or Sec-WebSocket-Protocol), read-only
connections, and the lifecycle hooks with their connection ids."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
import websockets

from collab import ChangeEvent, ConnectEvent, Hooks, RoomEvent
from collab.client import YClient
from collab.transport.connection import CloseRecord

from .helpers import converge, serve, settings, text_of
from .hooks_fixture import authenticate
from .hooks_fixture import hooks as auth_hooks

pytestmark = pytest.mark.anyio


async def closed_with(url: str, **kw: object) -> tuple[int, str, list[bytes]]:
    frames: list[bytes] = []
    async with websockets.connect(url, **kw) as ws:  # type: ignore[arg-type]
        try:
            async with asyncio.timeout(5):
                while True:
                    frames.append(await ws.recv())  # type: ignore[arg-type]
        except websockets.ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason, frames
    raise AssertionError("not closed")


async def test_denied_tokens_get_4401_or_4403_with_a_reason() -> None:
    async with serve(hooks=auth_hooks) as srv:
        code, reason, frames = await closed_with(f"{srv.ws_url}/doc")
        assert (code, reason) == (4401, "a token is required")
        # y-websocket's own "permission denied" auth message precedes the close
        assert frames == [b"\x02\x00\x13a token is required"]
        code, reason, _ = await closed_with(f"{srv.ws_url}/doc?token=nope")
        assert (code, reason) == (4403, "token 'nope' may not open 'doc'")


async def test_token_in_sec_websocket_protocol_header() -> None:
    async with serve(hooks=auth_hooks) as srv:
        async with websockets.connect(f"{srv.ws_url}/doc", subprotocols=["writer"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "writer"
            first = await asyncio.wait_for(ws.recv(), 5)
            assert first[:2] == b"\x00\x00"  # our step1: admitted


async def test_readonly_updates_are_neither_applied_nor_broadcast() -> None:
    async with serve(hooks=auth_hooks) as srv:
        url = f"{srv.ws_url}/ro"
        async with YClient(url, token="writer") as w, YClient(url, token="reader") as r:
            w.text().insert(0, "by writer;")
            await converge([w, r])
            r.text().insert(0, "by reader;")
            w.text().insert(len(w.text()), "more;")
            await w.wait_for(lambda c: True, 1)
            await r.wait_for(lambda c: "more;" in str(c.text()), 5)
            assert str(w.text()) == "by writer;more;"
        assert await text_of(f"{url}?token=writer") == "by writer;more;"


async def test_hooks_from_an_import_string() -> None:
    s = settings(hooks="tests.core.hooks_fixture:hooks")
    async with serve(s) as srv:
        code, _, _ = await closed_with(f"{srv.ws_url}/doc?token=bad")
        assert code == 4403
        assert srv.server.config.app.state.hooks.authenticate is authenticate


async def test_lifecycle_hooks_carry_the_connection_id() -> None:
    events: list[object] = []
    changed = asyncio.Event()

    async def record(event: object) -> None:
        events.append(event)
        changed.set()

    async def until(pred: Callable[[], bool]) -> None:
        async with asyncio.timeout(5):
            while not pred():
                changed.clear()
                await changed.wait()

    hooks = Hooks(
        on_connect=record, on_disconnect=record, on_change=record, on_load=record, on_store=record
    )
    async with serve(hooks=hooks) as srv:
        async with YClient(f"{srv.ws_url}/h") as c:
            c.text().insert(0, "x")
            await until(lambda: any(isinstance(e, RoomEvent) and e.size > 2 for e in events[1:]))
        await until(lambda: any(isinstance(e, CloseRecord) for e in events))
    connects = [e for e in events if isinstance(e, ConnectEvent)]
    changes = [e for e in events if isinstance(e, ChangeEvent)]
    closes = [e for e in events if isinstance(e, CloseRecord)]
    assert len(connects) == 1 and connects[0].room == "h"
    conn_id = connects[0].connection_id
    assert conn_id.startswith("c-")
    assert changes and all(e.connection_id == conn_id for e in changes)
    assert closes[0].connection_id == conn_id and closes[0].code == 1000
    assert isinstance(events[0], RoomEvent)  # on_load comes first
