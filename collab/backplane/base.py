"""The Backplane interface: a tiny pub/sub transport between instances.

Shaped like encode/broadcaster (start, stop, subscribe, unsubscribe,
publish), with two differences that matter here:

- payloads are bytes end to end (Yjs updates are binary; a backend that
  decodes them as text corrupts them);
- the layer above registers *resubscribed* callbacks, called after every
  (re)connect once every channel is subscribed again. Pub/sub drops whatever
  was published while a link was down, so that is when the replicator runs
  anti-entropy (DESIGN.md §3, Redis).

``publish`` never blocks and never raises: local editing must keep working
while the transport is down. A backend reports its failures itself (log line
with the cause, metric, health component) and, once the link is back, calls
the resubscribed callbacks so nothing dropped meanwhile stays lost.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

Handler = Callable[[bytes], None]
ResubscribedCallback = Callable[[], Awaitable[None]]


class Backplane(Protocol):
    name: str

    async def start(self) -> None:
        """Begin connecting. Never raises on a dependency failure: that is
        reported (log, health) and retried in the background."""

    async def stop(self) -> None:
        """Stop every background task and close the connections."""

    async def subscribe(self, channel: str, handler: Handler) -> None:
        """Deliver every payload published on ``channel`` to ``handler`` (on
        the event loop). Returns once subscribed, or at once while the link is
        down: the subscription is made on reconnect."""

    async def unsubscribe(self, channel: str) -> None: ...

    def publish(self, channel: str, payload: bytes) -> None:
        """Queue ``payload`` for ``channel``; never blocks, never raises."""

    def add_resubscribed_callback(self, callback: ResubscribedCallback) -> None:
        """Call ``callback`` after every (re)connect, once subscriptions are back."""
