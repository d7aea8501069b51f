"""The room registry: load, share, unload, flush.

A room is loaded once however many sockets open it at the same instant: the
first joiner creates a loading future that the others await (no lock held
for the room's lifetime — the pycrdt-websocket defect where the second of two
simultaneous joiners never synced). A room is unloaded ``grace`` seconds
after its last peer leaves, after its pending writes are stored.

Lifecycle of an entry (each transition checked)::

    LOADING ──loaded──▶ ACTIVE ──unload──▶ UNLOADING ──▶ (gone)
       └──load failed──▶ (gone)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from typing import Protocol

from ..stores import Store
from ..tasks import TaskSet
from .pacer import Pacer
from .room import Peer, Room, RoomLimits, RoomObserver, StoreOrigin

log = logging.getLogger("collab.rooms")


class RoomLifecycle(Protocol):
    """Told when a room is loaded and before it is unloaded (the backplane)."""

    async def room_loaded(self, room: Room) -> None: ...
    async def room_unloading(self, room: Room) -> None: ...


class RoomState(enum.Enum):
    LOADING = "loading"
    ACTIVE = "active"
    UNLOADING = "unloading"


class _Entry:
    __slots__ = ("done", "holds", "ready", "room", "state", "unload_timer")

    def __init__(self, room: Room) -> None:
        self.room = room
        # Server-side holders (the HTTP API) keep the room loaded like a peer.
        self.holds = 0
        self.state = RoomState.LOADING
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unload_timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] | None = None  # set while unloading

    def to(self, expected: RoomState, state: RoomState) -> None:
        if self.state is not expected:
            raise RuntimeError(
                f"room {self.room.name!r}: {self.state.value} -> {state.value}, "
                f"expected {expected.value}"
            )
        self.state = state

    def cancel_timer(self) -> None:
        if self.unload_timer is not None:
            self.unload_timer.cancel()
            self.unload_timer = None


class RoomRegistry:
    """The rooms of one process. ``observers`` see every room's changes and
    ``lifecycle`` its loads and unloads; ``on_loaded(name, size)`` runs after
    a load and ``flush(name)`` stores a room's pending writes before it goes."""

    def __init__(
        self,
        store: Store,
        *,
        grace: float,
        fanout_window: float,
        fanout_frame_rate: float = 0.0,
        observers: Sequence[RoomObserver] = (),
        lifecycle: Sequence[RoomLifecycle] = (),
        flush: Callable[[str], Awaitable[None]],
        on_loaded: Callable[[str, int], Awaitable[None]] | None = None,
        limits: RoomLimits = RoomLimits(),
    ) -> None:
        self._store = store
        self._grace = grace
        self._fanout_window = fanout_window
        self._fanout_frame_rate = fanout_frame_rate
        self._observers = tuple(observers)
        self._lifecycle = tuple(lifecycle)
        self._flush = flush
        self._on_loaded = on_loaded
        self._limits = limits
        self._entries: dict[str, _Entry] = {}
        self._tasks = TaskSet("rooms")

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> Room | None:
        """The room if it is loaded and active here."""
        entry = self._entries.get(name)
        return entry.room if entry and entry.state is RoomState.ACTIVE else None

    async def join(self, name: str, peer: Peer) -> Room:
        """Add ``peer`` to room ``name``, loading the room if needed."""
        entry = await self._active(name)
        entry.room.join(peer)
        return entry.room

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[Room]:
        """Keep room ``name`` loaded (loading it if needed) while the block
        runs, without a peer: the server's own reads and writes. Afterwards a
        room nobody is in is unloaded after the usual grace period."""
        entry = await self._active(name)
        entry.holds += 1
        try:
            yield entry.room
        finally:
            entry.holds -= 1
            self._idle(name, entry)

    async def _active(self, name: str) -> _Entry:
        """The room's ACTIVE entry, loaded if needed, its grace timer off.
        Nothing suspends between the return and the caller's join or hold."""
        while True:
            entry = self._entries.get(name)
            if entry is None:
                pacer = Pacer(
                    asyncio.get_running_loop(), self._fanout_window, self._fanout_frame_rate
                )
                room = Room(name, observers=self._observers, defer=pacer, limits=self._limits)
                entry = self._entries[name] = _Entry(room)
                self._tasks.spawn(self._load(name, entry), name=f"load {name}")
            if entry.state is RoomState.UNLOADING:
                assert entry.done is not None
                await asyncio.shield(entry.done)
                continue  # reload afresh
            # While LOADING no grace timer can be armed (leave() arms it only
            # for ACTIVE rooms); an ACTIVE room's future is done, so nothing
            # below suspends between cancelling the timer and joining.
            await asyncio.shield(entry.ready)
            if entry.state is not RoomState.ACTIVE:
                continue
            entry.cancel_timer()
            return entry

    async def _load(self, name: str, entry: _Entry) -> None:
        try:
            # Edits of an earlier visit the store has not taken yet (it was
            # failing when the room unloaded) go first, or the load misses them.
            await self._flush(name)
            data = await self._store.load(name)
            if data:
                entry.room.apply(data, StoreOrigin())
            self._check_size(entry.room, len(data or b""))
            for observer in self._lifecycle:
                await observer.room_loaded(entry.room)
        except BaseException as exc:
            self._entries.pop(name, None)
            entry.ready.set_exception(exc)
            entry.ready.exception()  # joiners re-raise it; silence "never retrieved"
            log.error("loading room %r failed: %s", name, exc)
            return
        entry.to(RoomState.LOADING, RoomState.ACTIVE)
        entry.ready.set_result(None)
        if self._on_loaded is not None:
            await self._on_loaded(name, len(data or b""))

    def _check_size(self, room: Room, size: int) -> None:
        room.measured(size)
        limit = self._limits.max_document_bytes
        if limit and size > limit:
            # Refusing to serve it would lock its users out of their own
            # document; it is served, and nobody may add to it.
            room.oversized = True
            log.warning(
                "room %r is %d bytes, past COLLAB_MAX_DOCUMENT_BYTES=%d: served read-only",
                room.name,
                size,
                limit,
                extra={"room": room.name},
            )

    def oversized(self) -> int:
        """Loaded rooms past the document limit (served read-only)."""
        return sum(1 for e in self._entries.values() if e.room.oversized)

    def leave(self, name: str, peer: Peer) -> None:
        entry = self._entries.get(name)
        if entry is None:
            return
        entry.room.leave(peer)
        self._idle(name, entry)

    def _idle(self, name: str, entry: _Entry) -> None:
        """Arm the grace timer once nobody is in the room and nobody holds it."""
        if (
            not entry.room.peers
            and not entry.holds
            and entry.state is RoomState.ACTIVE
            and entry.unload_timer is None
            and self._entries.get(name) is entry
        ):
            entry.unload_timer = asyncio.get_running_loop().call_later(
                self._grace, self._unload_later, name
            )

    def _unload_later(self, name: str) -> None:
        entry = self._entries.get(name)
        if entry is not None:
            entry.unload_timer = None
            self._tasks.spawn(self.unload(name), name=f"unload {name}")

    async def unload(self, name: str, *, force: bool = False, discard: bool = False) -> None:
        """Unload an ACTIVE room without peers (any, with ``force``), after
        storing its pending writes (not with ``discard``: a deleted room)."""
        entry = self._entries.get(name)
        if entry is None or entry.state is not RoomState.ACTIVE:
            return
        if (entry.room.peers or entry.holds) and not force:
            return
        entry.cancel_timer()
        entry.to(RoomState.ACTIVE, RoomState.UNLOADING)
        entry.done = asyncio.get_running_loop().create_future()
        try:
            for observer in self._lifecycle:
                await observer.room_unloading(entry.room)
            if not discard:
                await self._flush(name)
        except Exception as exc:
            log.error("unloading room %r: %s", name, exc)
        finally:
            entry.room.close()
            self._entries.pop(name, None)
            entry.done.set_result(None)
            log.debug("room %r unloaded", name)

    async def unload_all(self) -> None:
        """Shutdown: unload every room, peers or not, all at once (each
        bounded by the store timeout, so shutdown takes one timeout, not one
        per room); then no task is left."""
        await asyncio.gather(*(self.unload(name, force=True) for name in list(self._entries)))
        await self._tasks.aclose()
