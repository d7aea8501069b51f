"""Two collab instances sharing rooms through a real Redis (TLS + AUTH, as
ElastiCache): a HocuspocusProvider on instance A, a y-websocket client and
another provider on instance B, in one document."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path

import pytest

from tests.support.jsclient import JSClient, JSClientTimeout
from tests.support.redis_server import RedisServer

from .helpers import Served, serve, settings

pytestmark = pytest.mark.anyio

T = 15_000


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path) as client:
        yield client


async def _until_stateless(
    js: JSClient, handle: str, payload: str, send: Callable[[], object], attempts: int = 20
) -> None:
    """Send until ``handle`` receives ``payload``. Pub/sub drops what is published
    before the far instance has subscribed the room, and stateless messages,
    unlike updates, have no anti-entropy to bring them back."""
    for _ in range(attempts):
        result = send()
        if hasattr(result, "__await__"):
            await result  # type: ignore[misc]
        try:
            await js.event(event="stateless", handle=handle, payload=payload, timeout=0.5)
            return
        except JSClientTimeout:
            continue
    raise AssertionError(f"{payload!r} never reached {handle}")


async def test_provider_and_ywebsocket_on_two_instances(
    js: JSClient, redis_factory: Callable[..., RedisServer]
) -> None:
    redis = redis_factory(tls=True, password="auth-token")
    url = redis.url()
    async with AsyncExitStack() as stack:
        a: Served = await stack.enter_async_context(
            serve(settings(redis_url=url, instance_id="inst-a"))
        )
        b: Served = await stack.enter_async_context(
            serve(settings(redis_url=url, instance_id="inst-b"))
        )

        await js.call("connect_hocuspocus", handle="ha", url=a.hp_url, name="shared/doc")
        await js.call("connect", handle="yb", url=b.ws_url, room="shared/doc")
        await js.call("connect_hocuspocus", handle="hb", url=b.hp_url, name="shared/doc")

        # Edits both ways across the instances.
        await js.call("insert", handle="ha", text="from A (hocuspocus);")
        await js.call("wait_text", handle="yb", equals="from A (hocuspocus);", timeout_ms=T)
        await js.call("insert", handle="yb", text="from B (y-websocket);")
        await js.call("wait_text", handle="ha", contains="from B (y-websocket);", timeout_ms=T)
        await js.call("wait_text", handle="hb", contains="from B (y-websocket);", timeout_ms=T)
        await js.call("wait_synced", handle="ha", acked=True, timeout_ms=T)

        # Cursors both ways.
        await js.call("set_awareness", handle="ha", field="user", value={"name": "Ana"})
        await js.call("set_awareness", handle="yb", field="user", value={"name": "Ben"})
        await js.call("wait_awareness", handle="yb", value="Ana", timeout_ms=T)
        await js.call("wait_awareness", handle="ha", value="Ben", timeout_ms=T)

        # A stateless broadcast crosses: from A's hook, and from B's server API.
        await _until_stateless(
            js,
            "hb",
            "hello from A",
            lambda: js.call("send_stateless", handle="ha", payload="broadcast:hello from A"),
        )
        await _until_stateless(
            js, "ha", "pushed on B", lambda: b.collab.send_stateless("shared/doc", "pushed on B")
        )
        # The y-websocket client has no stateless messages: it got none.
        assert not js.events_for("yb", "stateless")
        # And each instance's own providers got them too.
        await js.event(event="stateless", handle="ha", payload="hello from A")
        await js.event(event="stateless", handle="hb", payload="pushed on B")
