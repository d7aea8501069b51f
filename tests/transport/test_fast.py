"""collab serve's own WebSocket protocol (collab.transport.fast), on the wire.

Raw sockets against real uvicorn on loopback: what a browser or a hostile
client can send that the codec tests cannot show end to end (pipelined
frames, fragments, unmasked frames, bad handshakes), and the hand-over of
sockets this path does not serve to the ASGI one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from collab.client import YClient
from collab.transport import fast
from collab.wire import ywebsocket as p
from tests.core.helpers import (
    STEP1_EMPTY,
    raw_ws_connect,
    serve,
    settings,
    update_inserting,
)
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio

MASK = b"\x11\x22\x33\x44"


def client_frame(first: int, payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes((first, 0x80 | n))
    else:
        head = bytes((first, 0x80 | 126)) + n.to_bytes(2, "big")
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def upgrade(path: str, *, version: str = "13", key: str | None = None) -> bytes:
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: {version}\r\n\r\n"
    ).encode()


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 10)

    async def frame(self) -> tuple[int, bytes]:
        async with asyncio.timeout(10):
            b0, b1 = await self.reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", await self.reader.readexactly(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", await self.reader.readexactly(8))[0]
            return b0 & 0x0F, await self.reader.readexactly(n)

    async def frame_of(self, opcode: int) -> bytes:
        while True:
            op, payload = await self.frame()
            if op == opcode:
                return payload

    def send(self, data: bytes) -> None:
        self.writer.write(data)


async def seen(url: str, expected: str) -> None:
    """A fresh client comes to read ``expected`` (edits travel asynchronously)."""
    async with YClient(url, reconnect=False) as c:
        await c.wait_for(lambda cc: str(cc.text()) == expected, 10)


@asynccontextmanager
async def raw(port: int, request: bytes) -> AsyncIterator[Raw]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        yield Raw(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


@pytest.mark.parametrize(
    ("request_kw", "status"),
    [({"version": "8"}, b"426"), ({"key": "not-base64!"}, b"400")],
)
async def test_a_bad_handshake_gets_its_status_and_the_server_goes_on(
    request_kw: dict[str, Any], status: bytes
) -> None:
    async with serve() as srv:
        async with raw(srv.port, upgrade("/r", **request_kw)) as bad:
            assert (await bad.head()).startswith(b"HTTP/1.1 " + status)
        async with YClient(f"{srv.ws_url}/r", reconnect=False) as c:
            c.text().insert(0, "still serving")
            await seen(f"{srv.ws_url}/r", "still serving")


async def test_frames_sent_while_the_room_loads_are_kept_in_order() -> None:
    """A client sends its step1 and edits as soon as it reads the 101, while
    the session is still joining: they are held, in order, and none is lost.
    (Bytes in the request's own TCP segment are uvicorn's to drop: its HTTP
    parser consumes them before any WebSocket protocol runs.)"""
    async with serve() as srv:
        update = update_inserting("early")
        async with raw(srv.port, upgrade("/early")) as c:
            assert (await c.head()).startswith(b"HTTP/1.1 101")
            c.send(client_frame(0x82, STEP1_EMPTY) + client_frame(0x82, p.encode_update(update)))
            reply = p.decode_message(await c.frame_of(0x2))
            assert isinstance(reply, (p.SyncStep1, p.SyncStep2))
            await seen(f"{srv.ws_url}/early", "early")


async def test_a_fragmented_update_is_joined() -> None:
    async with serve() as srv:
        frame = p.encode_update(update_inserting("in three parts"))
        third = len(frame) // 3
        async with raw(srv.port, upgrade("/frag")) as c:
            await c.head()
            c.send(client_frame(0x02, frame[:third]))
            c.send(client_frame(0x89, b"between"))  # a ping inside the message
            c.send(client_frame(0x00, frame[third : 2 * third]))
            c.send(client_frame(0x80, frame[2 * third :]))
            assert await c.frame_of(0xA) == b"between"
            await seen(f"{srv.ws_url}/frag", "in three parts")


async def test_an_unmasked_frame_gets_1002_and_the_room_goes_on() -> None:
    async with serve() as srv:
        async with YClient(f"{srv.ws_url}/m", reconnect=False) as bystander:
            async with raw(srv.port, upgrade("/m")) as c:
                await c.head()
                c.send(b"\x82\x02\x00\x00")  # client frames must be masked (RFC 6455 §5.1)
                close = await c.frame_of(0x8)
                assert struct.unpack(">H", close[:2])[0] == 1002
                # and the server ends the TCP connection
                assert await asyncio.wait_for(c.reader.read(), 10) == b""
            bystander.text().insert(0, "unaffected")
            await seen(f"{srv.ws_url}/m", "unaffected")


async def test_a_client_close_is_echoed() -> None:
    async with serve() as srv:
        async with raw(srv.port, upgrade("/bye")) as c:
            await c.head()
            c.send(client_frame(0x88, struct.pack(">H", 4000) + b"done"))
            assert await c.frame_of(0x8) == struct.pack(">H", 4000) + b"done"
            assert await asyncio.wait_for(c.reader.read(), 10) == b""


async def test_an_app_with_middleware_is_served_the_asgi_way() -> None:
    """The fast path would skip a host's middleware: such apps are handed to
    the ASGI protocol, and the middleware sees every socket."""
    scopes: list[str] = []

    class Record:
        def __init__(self, app: ASGIApp) -> None:
            self.app = app

        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            scopes.append(scope["type"])
            await self.app(scope, receive, send)

    async with serve(settings(), wrap=lambda app: app.add_middleware(Record)) as srv:
        async with YClient(f"{srv.ws_url}/mw", reconnect=False) as c:
            c.text().insert(0, "through the middleware")
            await seen(f"{srv.ws_url}/mw", "through the middleware")
    assert "websocket" in scopes


async def test_a_client_that_closes_but_never_reads_is_dropped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """It asked for the document (a step2 of megabytes, left in the write
    buffer), then sent its close: the session ends at once, and the socket,
    with that buffer, is aborted after the close timeout rather than kept for
    as long as the client keeps its TCP connection open."""
    monkeypatch.setattr(fast, "ABORT_AFTER", 0.5)
    async with serve() as srv:
        text = "x" * 2_000_000
        async with YClient(f"{srv.ws_url}/big", reconnect=False) as c:
            c.text().insert(0, text)
            await seen(f"{srv.ws_url}/big", text)
        sock = await asyncio.to_thread(raw_ws_connect, srv.port, "/big")
        try:
            connections = srv.server.server_state.connections
            (proto,) = (c for c in connections if isinstance(c, fast.FastWebSocketProtocol))
            # A small kernel buffer, so most of the document waits in the transport.
            server_sock = proto.transport.get_extra_info("socket")
            server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384)
            sock.sendall(client_frame(0x82, STEP1_EMPTY))  # answered with the whole document
            await wait_until(
                lambda: proto.transport.get_write_buffer_size() >= len(text) // 2,
                5,
                "the document waiting in the transport",
            )
            sock.sendall(client_frame(0x88, struct.pack(">H", 1000)))
            await wait_until(lambda: proto not in connections, 5, "the socket aborted")
        finally:
            sock.close()
