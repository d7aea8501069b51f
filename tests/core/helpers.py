"""Small helpers shared by the core integration tests."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import websockets
from pycrdt import Doc, Text

from collab import Settings, create_app
from collab.client import YClient
from collab.transport.uvicorn import protocol_class
from collab.wire import ywebsocket as p
from tests.support.servers import RunningApp, run_app


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "store_url": "memory://",
        "room_grace": 0.2,
        "flush_debounce": 0.05,
        "flush_max_wait": 0.2,
    }
    base.update(kw)
    return Settings(**base)


# Which uvicorn WebSocket protocol `serve` uses; tests/core/conftest.py runs
# every core test under both.
WS_IMPLS = {
    # What `collab serve` runs: frames go straight to the socket when it can
    # take them (collab.transport.uvicorn.DirectWriter).
    "collab-protocol": protocol_class(),
    # Stock uvicorn, as when collab is mounted in someone else's server:
    # every frame goes through the queue and the ASGI send.
    "stock-uvicorn": "websockets-sansio",
}
ws_impl = "collab-protocol"


@asynccontextmanager
async def serve(
    app_settings: Settings | None = None, wrap: Callable[[Any], None] | None = None, **kw: Any
) -> AsyncIterator[RunningApp]:
    """``wrap(app)`` may add middleware before it starts."""
    app = create_app(app_settings or settings(), **kw)
    if wrap is not None:
        wrap(app)
    # As `collab serve` configures uvicorn: no permessage-deflate (which
    # would also rule the direct path out).
    async with run_app(
        app,
        ws_ping_interval=None,
        ws=WS_IMPLS[ws_impl],
        ws_per_message_deflate=ws_impl == "stock-uvicorn",
    ) as srv:
        yield srv


async def text_of(url: str, timeout: float = 10) -> str:
    """Open a fresh client, sync, and read the document's text."""
    async with asyncio.timeout(timeout):
        async with YClient(url, reconnect=False) as c:
            return str(c.text())


async def converge(clients: list[YClient], timeout: float = 10) -> str:
    """Wait until every client's text equals the first's; return it."""
    async with asyncio.timeout(timeout):
        while True:
            texts = [str(c.text()) for c in clients]
            if len(set(texts)) == 1:
                return texts[0]
            waits = [
                asyncio.ensure_future(c.wait_for(lambda cc, t=t: str(cc.text()) != t, timeout))  # type: ignore[misc]
                for c, t in zip(clients, texts, strict=True)
            ]
            _, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for w in pending:
                w.cancel()


def update_inserting(text: str) -> bytes:
    d: Doc[Any] = Doc()
    d.get("text", type=Text).insert(0, text)
    return d.get_update()


async def raw_close(url: str, frames: list[Any], timeout: float = 10) -> tuple[int, str]:
    """Send frames on a raw socket (after the handshake); return the close code and reason."""
    async with asyncio.timeout(timeout):
        async with websockets.connect(url, max_size=None) as ws:
            await ws.recv()  # our step1 arrives first
            for frame in frames:
                await ws.send(frame)
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, "server closed without a close frame"
                return closed.rcvd.code, closed.rcvd.reason


STEP1_EMPTY = p.encode_step1(b"\x00")


def raw_ws_connect(port: int, path: str, rcvbuf: int = 4096) -> socket.socket:
    """A bare TCP WebSocket client with a tiny receive buffer that reads
    nothing until asked: the model of a client that stopped reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("closed during handshake")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def read_until_close_frame(sock: socket.socket, timeout: float = 30) -> tuple[int, str]:
    """Read server frames (unmasked) until a close frame; return its code and reason."""
    sock.settimeout(timeout)
    buf = bytearray()

    def need(n: int) -> None:
        while len(buf) < n:
            chunk = sock.recv(1 << 16)
            if not chunk:
                raise ConnectionError("connection ended without a close frame")
            buf.extend(chunk)

    while True:
        need(2)
        opcode, length, pos = buf[0] & 0x0F, buf[1] & 0x7F, 2
        if length == 126:
            need(4)
            length, pos = struct.unpack(">H", buf[2:4])[0], 4
        elif length == 127:
            need(10)
            length, pos = struct.unpack(">Q", buf[2:10])[0], 10
        need(pos + length)
        payload = bytes(buf[pos : pos + length])
        del buf[: pos + length]
        if opcode == 0x8:
            return struct.unpack(">H", payload[:2])[0], payload[2:].decode()
