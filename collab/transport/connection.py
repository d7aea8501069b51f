"""One socket: its id, bounded outbound queue, sender, and close accounting.

Frames are queued without blocking the room (a slow consumer must never slow
the others) and written by one sender task per connection. A queue past its
bound closes the connection with 1013 rather than buffering without limit
(pycrdt-websocket's silent 65,536-item buffer is what we avoid).
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import logging
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from ..errors import CloseCode

log = logging.getLogger("collab.connection")

ASGISend = Callable[[dict[str, Any]], Awaitable[None]]

_counter = itertools.count(1)
_PROCESS_TAG = os.urandom(3).hex()


def new_connection_id() -> str:
    """Unique across processes and restarts: a random per-process tag + a counter."""
    return f"c-{_PROCESS_TAG}-{next(_counter)}"


class State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


class Initiator(enum.StrEnum):
    CLIENT = "client"
    SERVER = "server"
    ABNORMAL = "abnormal"


@dataclass(slots=True)
class Stats:
    opened_at: float = field(default_factory=time.monotonic)
    frames_in: int = 0
    bytes_in: int = 0
    frames_out: int = 0
    bytes_out: int = 0
    last_frame_type: str = "-"


@dataclass(frozen=True, slots=True)
class CloseRecord:
    connection_id: str
    room: str
    code: int
    reason: str
    initiator: Initiator
    duration: float
    stats: Stats


_CLOSE = object()  # sentinel queued after the last frame to send
# A socket we closed that has not ended this long after is aborted: a client
# that stopped reading never takes the close frame, and the write buffer
# behind it (a document-sized step2, say) would live as long as its TCP.
ABORT_AFTER = 5.0

# Key of a ``websocket.disconnect`` message set by our uvicorn protocol when it
# closed the socket itself (keepalive timeout, a frame its parser refused).
TRANSPORT_CLOSE = "collab.closed_by_server"
# Scope key under which our uvicorn protocol hands over the id it gave the
# socket (so its own log lines and ours carry the same id).
CONN_ID_SCOPE_KEY = "collab.conn_id"
# Scope key of the direct writer our uvicorn protocol offers (see transport.uvicorn).
DIRECT_SCOPE_KEY = "collab.direct_writer"
# Scope key of a callable dropping the socket at once, its buffers with it.
ABORT_SCOPE_KEY = "collab.abort"
# Scope key of ``pump(sink)`` (collab serve's own protocol, transport.fast):
# frames go to ``sink`` from the protocol's callbacks, not through receive().
PUMP_SCOPE_KEY = "collab.pump"


def disconnect_message(code: int, reason: str = "", *, by_server: bool = False) -> Any:
    """The ``websocket.disconnect`` message a protocol gives the session at
    the end (typed Any: it carries our extra key when we closed it)."""
    message: dict[str, Any] = {"type": "websocket.disconnect", "code": code, "reason": reason}
    if by_server:
        message[TRANSPORT_CLOSE] = True
    return message


class DirectWrite(Protocol):
    """Frames written straight to the socket when it can take them now."""

    def ready(self) -> bool: ...

    def write(self, payload: bytes) -> None: ...


class Connection:
    """Owns the outbound side of one socket. Transitions OPEN → CLOSING → CLOSED.

    With a ``direct`` writer (``collab serve``), a frame goes straight to the
    socket when nothing is queued ahead of it and the socket takes it now;
    the sender task exists only once something had to wait (a slow client,
    a close), so an idle connection costs no task. Without one (collab
    mounted in another server), every frame goes through the queue and the
    ASGI send.
    """

    # Thousands of these live at once: no per-instance __dict__.
    __slots__ = (
        "_abort",
        "_abort_send",
        "_abort_timer",
        "_asgi_send",
        "_direct",
        "_max_bytes",
        "_max_frames",
        "_on_overflow",
        "_on_sent",
        "_queue",
        "_queued_bytes",
        "_sender_task",
        "_sending",
        "_wake",
        "close_code",
        "close_reason",
        "id",
        "path",
        "state",
        "stats",
    )

    def __init__(
        self,
        conn_id: str,
        send: ASGISend,
        *,
        max_frames: int,
        max_bytes: int,
        path: str = "",
        direct: DirectWrite | None = None,
        on_sent: Callable[[str, int], None] | None = None,
        on_overflow: Callable[[], None] | None = None,
        abort: Callable[[], None] | None = None,
    ) -> None:
        """``on_sent(label, size)`` is called for every frame written (the
        metrics tally); ``on_overflow()`` when the queue bound closes it;
        ``abort()`` drops the socket and what its transport still buffers
        (offered by our uvicorn protocol; the host server's otherwise)."""
        self.id = conn_id
        self.path = path
        self.stats = Stats()
        self.state = State.OPEN
        self.close_code: int | None = None
        self.close_reason = ""
        self._asgi_send = send
        self._direct = direct
        self._max_frames = max_frames
        self._max_bytes = max_bytes
        # Made on first use: with direct writes most sockets never queue.
        self._queue: deque[object] | None = None
        self._queued_bytes = 0
        self._wake: asyncio.Event | None = None
        self._sender_task: asyncio.Task[None] | None = None
        self._sending = False
        self._abort_send = False
        self._on_sent = on_sent
        self._on_overflow = on_overflow
        self._abort = abort
        self._abort_timer: asyncio.TimerHandle | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.state.value}>"

    def send(self, frame: bytes, label: str) -> None:
        """Send a frame now if the socket takes it, else queue it; overflow
        closes this connection with 1013. ``label`` is its type, for metrics."""
        if self.state is not State.OPEN:
            return
        direct = self._direct
        if direct is not None and not self._queue and not self._sending and direct.ready():
            direct.write(frame)
            self._sent(label, len(frame))
            return
        # An empty queue always takes one frame, however large: a big
        # document's step2 must not count as a slow client.
        queue = self._queue
        if queue and (
            len(queue) >= self._max_frames or self._queued_bytes + len(frame) > self._max_bytes
        ):
            if self._on_overflow is not None:
                self._on_overflow()
            log.warning("outbound queue full, closing", extra={"conn_id": self.id})
            self.close(CloseCode.TRY_AGAIN_LATER, "outbound queue overflow: client too slow")
            return
        self._queued_bytes += len(frame)
        self._enqueue((frame, label))

    def _enqueue(self, item: object) -> None:
        """Queue for the sender and wake it; queue and sender are made on first use."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append(item)
        if self._wake is None:
            self._wake = asyncio.Event()
            self._sender_task = asyncio.get_running_loop().create_task(self.run_sender())
        self._wake.set()

    def _sent(self, label: str, size: int) -> None:
        self.stats.frames_out += 1
        self.stats.bytes_out += size
        if self._on_sent is not None:
            self._on_sent(label, size)

    def close(self, code: int, reason: str, *, flush: bool = False) -> None:
        """Ask the sender to close with ``code``: at once, or after the queue (flush)."""
        if self.state is not State.OPEN:
            return
        self._transition(State.OPEN, State.CLOSING)
        self.close_code = code
        self.close_reason = reason
        if not flush:
            if self._queue:
                self._queue.clear()
            self._queued_bytes = 0
            if self._sending and self._sender_task is not None:
                # The sender is stuck behind a client that stopped reading:
                # abandon that frame so the close frame is next in line.
                self._abort_send = True
                self._sender_task.cancel()
        self._enqueue(_CLOSE)
        if self._abort is not None:
            self._abort_timer = asyncio.get_running_loop().call_later(ABORT_AFTER, self.abort)

    async def run_sender(self) -> None:
        """Write queued frames in order until the close sentinel or a dead socket."""
        queue, wake = self._queue, self._wake
        assert queue is not None and wake is not None  # made before the sender starts
        while True:
            await wake.wait()
            wake.clear()
            while queue:
                item = queue.popleft()
                if item is _CLOSE:
                    await self._send_close()
                    return
                frame, label = cast(tuple[bytes, str], item)
                self._queued_bytes -= len(frame)
                self._sending = True
                try:
                    await self._asgi_send({"type": "websocket.send", "bytes": frame})
                except asyncio.CancelledError:
                    if not self._abort_send:
                        raise
                    self._abort_send = False
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    continue  # the queue now holds only the close sentinel
                except (OSError, RuntimeError) as exc:
                    # The peer is gone; the receive side reports how it closed.
                    log.debug("send failed: %s", exc, extra={"conn_id": self.id})
                    return
                finally:
                    self._sending = False
                self._sent(label, len(frame))

    async def _send_close(self) -> None:
        try:
            await self._asgi_send(
                {
                    "type": "websocket.close",
                    "code": self.close_code,
                    "reason": self.close_reason[:120],
                }
            )
        except (OSError, RuntimeError) as exc:
            log.debug("close failed: %s", exc, extra={"conn_id": self.id})

    def abort(self) -> None:
        """A client that does not read is given up on: its queue goes, and
        with our uvicorn protocol its transport and every byte buffered there."""
        if self.state is State.CLOSED:
            return
        log.warning(
            "socket did not end after its close: aborting the socket", extra={"conn_id": self.id}
        )
        if self._queue:
            self._queue.clear()
        self._queued_bytes = 0
        if self._abort is not None:
            self._abort()

    def closed_by_transport(self, code: int, reason: str) -> None:
        """The ASGI server itself closed the socket (keepalive timeout, its own
        shutdown, a frame its parser refused): account it as a server close."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        if self.state is State.OPEN:
            self._transition(State.OPEN, State.CLOSING)

    def _transition(self, expected: State, to: State) -> None:
        if self.state is not expected:
            raise RuntimeError(
                f"connection {self.id}: {self.state.value} -> {to.value}, expected {expected.value}"
            )
        self.state = to

    def finish(self, client_code: int | None, client_reason: str, room: str) -> CloseRecord:
        """The socket is gone: stop the sender, settle who closed it and why."""
        if self.state is State.OPEN:
            self._transition(State.OPEN, State.CLOSING)
        self._transition(State.CLOSING, State.CLOSED)
        if self._abort_timer is not None:
            self._abort_timer.cancel()
        if self._sender_task is not None:
            self._sender_task.cancel()
        if self.close_code is not None:
            code, reason, who = self.close_code, self.close_reason, Initiator.SERVER
        else:
            code = client_code if client_code is not None else CloseCode.NO_STATUS
            reason = client_reason
            who = (
                Initiator.ABNORMAL
                if code in (CloseCode.NO_STATUS, CloseCode.ABNORMAL)
                else Initiator.CLIENT
            )
        return CloseRecord(
            self.id,
            room,
            int(code),
            reason,
            who,
            time.monotonic() - self.stats.opened_at,
            self.stats,
        )
