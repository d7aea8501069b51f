"""An in-process backplane: several "instances" in one process share a hub.

For tests and for single-process experiments. Delivery is asynchronous
(``call_soon``), in publish order, and includes the publisher itself, as with
Redis pub/sub. :meth:`MemoryBackplane.disconnect` and :meth:`reconnect`
simulate a lost link: while disconnected nothing is delivered to or from this
member, and what was published meanwhile is gone, exactly as with Redis.
"""

from __future__ import annotations

import asyncio
import logging

from .base import Handler, ResubscribedCallback

log = logging.getLogger("collab.backplane.memory")


class MemoryHub:
    """The shared "server" of several :class:`MemoryBackplane` members."""

    def __init__(self) -> None:
        self.members: list[MemoryBackplane] = []

    def join(self, member: MemoryBackplane) -> None:
        if member not in self.members:
            self.members.append(member)

    def leave(self, member: MemoryBackplane) -> None:
        if member in self.members:
            self.members.remove(member)

    def deliver(self, channel: str, payload: bytes) -> None:
        loop = asyncio.get_running_loop()
        for member in list(self.members):
            handler = member.handlers.get(channel) if member.connected else None
            if handler is not None:
                loop.call_soon(member.receive, channel, handler, payload)


class MemoryBackplane:
    name = "memory"

    def __init__(self, hub: MemoryHub | None = None) -> None:
        self.hub = hub if hub is not None else MemoryHub()
        self.handlers: dict[str, Handler] = {}
        self.connected = False
        self.published = 0
        self.dropped = 0
        self._callbacks: list[ResubscribedCallback] = []

    async def start(self) -> None:
        self.hub.join(self)
        await self.reconnect()

    async def stop(self) -> None:
        self.connected = False
        self.hub.leave(self)
        self.handlers.clear()

    async def subscribe(self, channel: str, handler: Handler) -> None:
        self.handlers[channel] = handler

    async def unsubscribe(self, channel: str) -> None:
        self.handlers.pop(channel, None)

    def publish(self, channel: str, payload: bytes) -> None:
        if not self.connected:
            self.dropped += 1
            return
        self.published += 1
        self.hub.deliver(channel, bytes(payload))

    def add_resubscribed_callback(self, callback: ResubscribedCallback) -> None:
        self._callbacks.append(callback)

    def receive(self, channel: str, handler: Handler, payload: bytes) -> None:
        # Re-check at delivery time: a message in flight when the link drops is lost.
        if self.connected and self.handlers.get(channel) is handler:
            handler(payload)

    # -- fault simulation (tests) ---------------------------------------------

    def disconnect(self) -> None:
        """Lose the link: nothing is delivered to or from this member."""
        self.connected = False

    async def reconnect(self) -> None:
        """Link back: run the resubscribed callbacks (anti-entropy), in order."""
        self.connected = True
        for callback in list(self._callbacks):
            await callback()
