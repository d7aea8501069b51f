"""Shared pieces of the Hocuspocus tests: hooks with fixed rules, an
in-process server, and a raw socket that speaks frames (for what a real
provider never sends)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import websockets
from pycrdt import Doc, Text

from collab import AuthRequest, AuthResult, Hooks, Settings, StatelessEvent, create_app
from collab.server import CollabServer
from collab.wire import hocuspocus as hp
from tests.support.servers import RunningApp, run_app

PATH = "/hocuspocus"


@dataclass
class Rules:
    """The same rules as tests/js/hocuspocus-server.mjs (the 3.x reference), so
    one script runs against both:

    - token "bad" is denied with reason "bad-token"; "readonly" is read-only;
      any other token (or none) is read-write;
    - stateless "echo:<x>" is answered to the sender; "broadcast:<x>" sends
      "<x>" to every client of the document.

    Plus, for collab only: token "slow" waits for ``release`` before allowing.
    """

    stateless: list[StatelessEvent] = field(default_factory=list)
    auth_requests: list[AuthRequest] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def authenticate(self, request: AuthRequest) -> AuthResult:
        self.auth_requests.append(request)
        if request.token == "bad":
            return AuthResult.deny("bad-token")
        if request.token == "slow":
            await self.release.wait()
        return AuthResult.allow(readonly=request.token == "readonly")

    async def on_stateless(self, event: StatelessEvent) -> None:
        self.stateless.append(event)
        if event.payload.startswith("echo:"):
            event.reply(event.payload)
        elif event.payload.startswith("broadcast:"):
            event.broadcast(event.payload.removeprefix("broadcast:"))

    def hooks(self) -> Hooks:
        return Hooks(authenticate=self.authenticate, on_stateless=self.on_stateless)


def settings(**kw: Any) -> Settings:
    base: dict[str, Any] = {
        "store_url": "memory://",
        "room_grace": 0.2,
        "flush_debounce": 0.05,
        "flush_max_wait": 0.2,
    }
    base.update(kw)
    return Settings.from_env({}, **base)


@dataclass
class Served:
    app: RunningApp
    collab: CollabServer
    rules: Rules

    @property
    def ws_url(self) -> str:
        """Base URL of the y-websocket rooms."""
        return self.app.ws_url

    @property
    def hp_url(self) -> str:
        return self.app.ws_url + PATH

    def hocuspocus_connections(self) -> list[str]:
        return [cid for cid, c in self.collab.connections.items() if c.path == PATH]


@asynccontextmanager
async def serve(
    app_settings: Settings | None = None, rules: Rules | None = None
) -> AsyncIterator[Served]:
    rules = rules or Rules()
    app = create_app(app_settings or settings(), hooks=rules.hooks())
    async with run_app(app, ws_ping_interval=None) as running:
        yield Served(running, app.state.collab, rules)


def update_inserting(text: str) -> bytes:
    d: Doc[Any] = Doc()
    d.get("text", type=Text).insert(0, text)
    return d.get_update()


class Raw:
    """A bare websocket speaking Hocuspocus frames; every read has a timeout."""

    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.seen: list[hp.Message] = []

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[Raw]:
        async with websockets.connect(url, max_size=None) as ws:
            yield cls(ws)

    async def send(self, *frames: bytes) -> None:
        for frame in frames:
            await self.ws.send(frame)

    async def open(self, name: str, token: str = "") -> hp.Message:
        """Auth + step1, as a provider opens a document; returns the auth answer."""
        await self.send(hp.encode_auth_token(name, token, "4.8.0"), hp.encode_step1(name, b"\x00"))
        return await self.next(
            lambda m: isinstance(m, (hp.Authenticated, hp.PermissionDenied)) and m.address == name
        )

    async def next(self, match: Callable[[hp.Message], bool], timeout: float = 5.0) -> hp.Message:
        """The next frame matching ``match`` (others are kept in ``seen``)."""
        async with asyncio.timeout(timeout):
            while True:
                data = await self.ws.recv()
                assert isinstance(data, bytes), data
                msg = hp.decode_frame(data)
                self.seen.append(msg)
                if match(msg):
                    return msg

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """Read until the server closes; return its close code and reason."""
        async with asyncio.timeout(timeout):
            try:
                while True:
                    await self.ws.recv()
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, "server closed without a close frame"
                return closed.rcvd.code, closed.rcvd.reason
