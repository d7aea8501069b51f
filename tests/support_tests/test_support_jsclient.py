"""The Node driver (tests/js/client.mjs) and its Python wrapper, against real servers:
the reference @hocuspocus/server 3.x, and pycrdt-websocket for the y-websocket path."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pycrdt.websocket import ASGIServer, WebsocketServer

from tests.support.certs import make_certs
from tests.support.jsclient import (
    HocuspocusServer,
    JSClient,
    JSClientError,
    JSClientTimeout,
    run_hocuspocus_server,
)
from tests.support.ports import free_port
from tests.support.servers import run_app

pytestmark = pytest.mark.anyio


@pytest.fixture
async def hocuspocus(tmp_path: Path) -> AsyncIterator[HocuspocusServer]:
    async with run_hocuspocus_server(tmp_path) as server:
        yield server


@pytest.fixture
async def js(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path) as client:
        yield client


async def test_reference_server_is_hocuspocus_3(hocuspocus: HocuspocusServer) -> None:
    assert hocuspocus.version.startswith("3.")


async def test_hocuspocus_providers_converge_on_text_and_awareness(
    js: JSClient, hocuspocus: HocuspocusServer
) -> None:
    url = f"{hocuspocus.url}/hocuspocus"
    a = await js.call("connect_hocuspocus", handle="a", url=url, name="doc-1", token="good")
    b = await js.call("connect_hocuspocus", handle="b", url=url, name="doc-1", token="good")
    assert a["scope"] == "read-write"
    assert await js.event(event="authenticated", handle="a")
    assert await js.event(event="synced", handle="b", state=True)

    await js.call("insert", handle="a", index=0, text="hello")
    assert await js.call("wait_text", handle="b", equals="hello", timeout_ms=5000) == "hello"
    await js.call("insert", handle="b", index=5, text=" world")
    await js.call("wait_text", handle="a", contains=["hello", "world"], timeout_ms=5000)
    await js.call("delete", handle="a", index=0, length=6)
    assert await js.call("wait_text", handle="b", equals="world", timeout_ms=5000) == "world"
    assert await js.call("text", handle="a") == "world"
    await js.call("wait_synced", handle="a", acked=True, timeout_ms=5000)

    await js.call("set_awareness", handle="a", value={"name": "alice"})
    await js.call("set_awareness", handle="b", value={"name": "bob"})
    states = await js.call("wait_awareness", handle="b", value="alice", timeout_ms=5000)
    assert states[str(a["client_id"])]["user"] == {"name": "alice"}
    await js.call("wait_awareness", handle="a", value="bob", timeout_ms=5000)
    assert await js.call("client_id", handle="b") == b["client_id"]
    assert set(await js.call("awareness", handle="a")) == {str(a["client_id"]), str(b["client_id"])}

    # Leaving removes the peer's presence for the others.
    assert await js.call("disconnect", handle="b") is True
    await js.call("wait_awareness", handle="a", value="bob", present=False, timeout_ms=5000)


async def test_hocuspocus_denied_token_gives_authentication_failed(
    js: JSClient, hocuspocus: HocuspocusServer
) -> None:
    with pytest.raises(JSClientError) as info:
        await js.call(
            "connect_hocuspocus", handle="bad", url=hocuspocus.url, name="doc", token="bad"
        )
    assert info.value.kind == "authenticationFailed"
    assert info.value.data["reason"] == "bad-token"
    event = await js.event(event="authenticationFailed", handle="bad", timeout=5)
    assert event["reason"] == "bad-token"
    # The failed handle is released and can be reused.
    await js.call("connect_hocuspocus", handle="bad", url=hocuspocus.url, name="doc", token="ok")


async def test_hocuspocus_stateless_and_shared_socket(
    js: JSClient, hocuspocus: HocuspocusServer
) -> None:
    await js.call("hocuspocus_socket", socket="s", url=hocuspocus.url)
    await js.call("connect_hocuspocus", handle="d1", socket="s", name="one")
    await js.call("connect_hocuspocus", handle="d2", socket="s", name="two")
    await js.call("send_stateless", handle="d1", payload="echo:ping")
    assert (await js.event(event="stateless", handle="d1", timeout=5))["payload"] == "echo:ping"
    # Two documents over one socket stay separate.
    await js.call("insert", handle="d1", text="only in one")
    await js.call("wait_synced", handle="d1", acked=True, timeout_ms=5000)
    assert await js.call("text", handle="d2") == ""
    # Detaching one document leaves the shared socket serving the other.
    await js.call("disconnect", handle="d1")
    await js.call("insert", handle="d2", text="still here")
    await js.call("wait_synced", handle="d2", acked=True, timeout_ms=5000)
    await js.call("disconnect", handle="d2")
    assert await js.call("close_socket", socket="s") is True


async def test_hocuspocus_server_restart_closes_and_provider_reconnects(
    tmp_path: Path, js: JSClient
) -> None:
    async with run_hocuspocus_server(tmp_path / "first") as server:
        port = server.port
        await js.call("connect_hocuspocus", handle="a", url=server.url, name="doc")
    close = await js.event(event="close", handle="a", timeout=10)
    assert close["local"] is False and isinstance(close["code"], int)
    # Edit while the server is down; the reconnect must carry it over.
    await js.call("insert", handle="a", text="written offline")
    mark = js.mark()
    async with run_hocuspocus_server(tmp_path / "second", port=port) as server:
        await js.event(event="synced", handle="a", state=True, since=mark, timeout=10)
        await js.call("connect_hocuspocus", handle="b", url=server.url, name="doc")
        await js.call("wait_text", handle="b", equals="written offline", timeout_ms=5000)


async def test_driver_errors_are_replies_not_hangs(
    js: JSClient, hocuspocus: HocuspocusServer
) -> None:
    with pytest.raises(JSClientError) as info:
        await js.call("text", handle="nope")
    assert info.value.kind == "unknown_handle"
    with pytest.raises(JSClientError) as info:
        await js.call("no_such_command")
    assert info.value.kind == "bad_request"

    await js.call("connect_hocuspocus", handle="a", url=hocuspocus.url, name="doc")
    started = time.monotonic()
    with pytest.raises(JSClientTimeout) as timeout_info:
        await js.call("wait_text", handle="a", equals="never", timeout_ms=300)
    assert timeout_info.value.kind == "timeout"
    assert time.monotonic() - started < 3
    with pytest.raises(JSClientTimeout):
        await js.event(event="never-emitted", timeout=0.2)


async def test_connect_to_closed_port_times_out_with_close_events(js: JSClient) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(JSClientTimeout) as info:
        await js.call("connect", handle="y", url=f"ws://127.0.0.1:{port}", room="r", timeout_ms=800)
    assert any(c["code"] == 1006 for c in info.value.data["closes"])
    assert (await js.event(event="close", handle="y", timeout=2))["code"] == 1006


# -- y-websocket path, against pycrdt-websocket (speaks the y-websocket protocol) --


# auto_clean_rooms=False: pycrdt-websocket 0.16.5's room clean-up leaves a
# memory stream unclosed (a ResourceWarning, an error under our filterwarnings).


@pytest.fixture
async def yws_url() -> AsyncIterator[str]:
    async with WebsocketServer(auto_clean_rooms=False) as ws_server:
        async with run_app(ASGIServer(ws_server)) as app:
            yield app.ws_url


async def test_y_websocket_providers_converge(js: JSClient, yws_url: str) -> None:
    # Sequential joins: pycrdt-websocket 0.16.5 stalls a second client that
    # joins a brand-new room concurrently (DESIGN.md §3).
    a = await js.call(
        "connect", handle="a", url=yws_url, room="team/doc", params={"v": "1"}, timeout_ms=5000
    )
    await js.call("connect", handle="b", url=yws_url, room="team/doc", timeout_ms=5000)
    await js.call("insert", handle="a", index=0, text="from a")
    await js.call("wait_text", handle="b", equals="from a", timeout_ms=5000)
    await js.call("set_awareness", handle="a", value={"name": "ann"})
    states = await js.call("wait_awareness", handle="b", value="ann", timeout_ms=5000)
    assert states[str(a["client_id"])]["user"]["name"] == "ann"

    update = await js.call("encode_state", handle="a")
    await js.call("connect", handle="c", url=yws_url, room="other", timeout_ms=5000)
    await js.call("apply_update", handle="c", update=update)
    assert await js.call("text", handle="c") == "from a"

    await js.call("disconnect", handle="a")
    assert (await js.event(event="close", handle="a", timeout=5))["local"] is True


async def test_y_websocket_over_tls_with_the_test_ca(js: JSClient, tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "pki")
    async with WebsocketServer(auto_clean_rooms=False) as ws_server:
        async with run_app(
            ASGIServer(ws_server),
            ssl_certfile=str(certs.server_cert),
            ssl_keyfile=str(certs.server_key),
        ) as app:
            assert app.ws_url.startswith("wss://")
            # (No negative case here: a TLS handshake aborted by the client makes
            # asyncio's SSL transport leak the accepted socket, a ResourceWarning.)
            ca = str(certs.ca_cert)
            await js.call("connect", handle="a", url=app.ws_url, room="r", ca_file=ca)
            await js.call("insert", handle="a", text="over tls")
            await js.call("connect", handle="b", url=app.ws_url, room="r", ca_file=ca)
            await js.call("wait_text", handle="b", equals="over tls", timeout_ms=5000)
