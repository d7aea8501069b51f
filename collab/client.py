"""A Python y-websocket client on pycrdt, for bots, scripts and tests.

It syncs a ``pycrdt.Doc`` with a room, relays awareness, and reconnects with
exponential backoff and full jitter up to a cap (the AppSync reconnect-storm
lesson: clients reconnecting in lockstep took a service down).

    async with YClient("ws://127.0.0.1:1234/my-room") as client:
        client.doc.get("text", type=Text).insert(0, "hello")
        await client.wait_for(lambda c: "world" in str(c.text()), timeout=5)
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import websockets
from pycrdt import Doc, Text

from .api_client import ApiClient
from .backoff import backoff_delay
from .observability.redact import redact_url
from .wire import awareness as aw
from .wire import ywebsocket as p

__all__ = ["ApiClient", "YClient"]  # ApiClient: the HTTP API (collab/api_client.py)

log = logging.getLogger("collab.client")


class _RedactTokens(logging.Filter):
    """websockets' debug trace prints the request line, ``?token=`` and all."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact_url(record.getMessage()), None
        return True


# The logger websockets writes this client's trace to (its default would be
# "websockets.client", with the token in the clear).
_ws_log = logging.getLogger("collab.client.websockets")
_ws_log.addFilter(_RedactTokens())


class YClient:
    def __init__(
        self,
        url: str,
        doc: Doc[Any] | None = None,
        *,
        token: str | None = None,
        reconnect: bool = True,
        backoff_base: float = 0.1,
        backoff_cap: float = 5.0,
    ) -> None:
        self.url = url if token is None else f"{url}{'&' if '?' in url else '?'}token={token}"
        self.doc: Doc[Any] = doc if doc is not None else Doc()
        self.reconnect = reconnect
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason = ""
        self.connects = 0
        self.awareness: dict[int, Any] = {}
        self._local_state: Any = None
        self._clock = 0
        self._ws: Any = None
        self._remote = False
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._sub = self.doc.observe(self._on_local_update)

    def text(self, name: str = "text") -> Text:
        text: Text = self.doc.get(name, type=Text)
        return text

    async def __aenter__(self) -> YClient:
        await self.start()
        await asyncio.wait_for(self.synced.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Send what is pending, then close (no reconnect)."""
        self.reconnect = False
        if self._sending:
            await asyncio.wait(self._sending, timeout=5)
        if self._ws is not None:
            await self._ws.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, 5)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()

    async def _run(self) -> None:
        attempt = 0
        while True:
            try:
                async with websockets.connect(self.url, max_size=None, logger=_ws_log) as ws:
                    self._ws = ws
                    self.connects += 1
                    attempt = 0
                    await ws.send(p.encode_step1(self.doc.get_state()))
                    if self._local_state is not None:
                        await ws.send(self._awareness_frame())
                    async for frame in ws:
                        if isinstance(frame, bytes):
                            await self._handle(frame)
            except (OSError, websockets.WebSocketException) as exc:
                log.debug("connection to %s ended: %s", redact_url(self.url), exc)
            finally:
                ws_ = self._ws
                self._ws = None
                self.synced.clear()
                if ws_ is not None and ws_.close_code is not None:
                    self.close_code, self.close_reason = ws_.close_code, ws_.close_reason or ""
                async with self._changed:
                    self._changed.notify_all()
            if not self.reconnect:
                self.closed.set()
                return
            await asyncio.sleep(backoff_delay(attempt, self.backoff_base, self.backoff_cap))
            attempt += 1

    async def _handle(self, frame: bytes) -> None:
        msg = p.decode_message(frame)
        if isinstance(msg, p.SyncStep1):
            await self._send(p.encode_step2(self.doc.get_update(msg.state_vector)))
        elif isinstance(msg, (p.SyncStep2, p.SyncUpdate)):
            self._remote = True
            try:
                self.doc.apply_update(msg.update)
            finally:
                self._remote = False
            if isinstance(msg, p.SyncStep2):
                self.synced.set()
        elif isinstance(msg, p.Awareness):
            for e in aw.decode_update(msg.update):
                if e.state == aw.NULL_STATE:
                    self.awareness.pop(e.client_id, None)
                else:
                    self.awareness[e.client_id] = json.loads(e.state)
        async with self._changed:
            self._changed.notify_all()

    def _on_local_update(self, event: Any) -> None:
        if self._remote or self._ws is None:
            return  # a reconnect's step1/step2 exchange carries it later
        frame = p.encode_update(event.update)
        task = asyncio.get_running_loop().create_task(self._send(frame))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, frame: bytes) -> None:
        ws = self._ws
        if ws is not None:
            try:
                await ws.send(frame)
            except websockets.WebSocketException:
                pass  # the receive loop sees the close and reconnects

    def _awareness_frame(self) -> bytes:
        state = json.dumps(self._local_state) if self._local_state is not None else "null"
        entry = aw.Entry(self.doc.client_id, self._clock, state)
        return p.encode_awareness(aw.encode_update([entry]))

    async def set_awareness(self, state: Any) -> None:
        """Publish this client's presence (None removes it)."""
        self._local_state = state
        self._clock += 1
        await self._send(self._awareness_frame())

    async def wait_for(self, predicate: Callable[[YClient], bool], timeout: float) -> None:
        """Wait until ``predicate(self)`` holds, re-checked on every change."""

        async def check() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: predicate(self))

        await asyncio.wait_for(check(), timeout)

    async def wait_closed(self, timeout: float) -> None:
        await asyncio.wait_for(self.closed.wait(), timeout)
