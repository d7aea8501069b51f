"""The room registry and lifecycle: load, share, unload, flush.

A room is loaded once however many sockets open it at the same instant: the
first joiner creates a loading future that the others await (no lock held
for the room's lifetime — the pycrdt-websocket defect where the second of two
simultaneous joiners never synced). A room is unloaded ``room_grace`` seconds
after its last peer leaves, after its pending writes are stored.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .config import Settings
from .connection import Connection
from .health import Health
from .hooks import ChangeEvent, Hooks, RoomEvent
from .metrics import Metrics
from .persistence import Writer
from .room import Origin, Peer, PeerOrigin, Room, StoreOrigin
from .stores import Store

log = logging.getLogger("collab.server")


class Pacer:
    """A room's ``defer``: when to fan out the updates gathered so far.

    After a quiet spell, on the next event-loop turn (merging whatever the
    turn brought). While updates keep coming, at most once per ``window``:
    a flood from one writer then leaves as a few merged frames per peer, not
    one frame per keystroke, which is what the server's CPU and every
    receiver's pay for (Hocuspocus 4 has the same idea as its flushDelay).
    """

    __slots__ = ("_last", "_loop", "_window")

    def __init__(self, loop: asyncio.AbstractEventLoop, window: float) -> None:
        self._loop = loop
        self._window = window
        self._last = -window

    def __call__(self, flush: Callable[[], None]) -> None:
        due = self._last + self._window
        if self._loop.time() >= due:
            self._loop.call_soon(self._run, flush)
        else:
            self._loop.call_at(due, self._run, flush)

    def _run(self, flush: Callable[[], None]) -> None:
        self._last = self._loop.time()
        flush()


class RoomState(enum.Enum):
    LOADING = "loading"
    ACTIVE = "active"
    UNLOADING = "unloading"


class _Entry:
    __slots__ = ("done", "ready", "room", "state", "unload_timer")

    def __init__(self, room: Room) -> None:
        self.room = room
        self.state = RoomState.LOADING
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.unload_timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[None] | None = None  # set while unloading


RoomHook = Callable[[Room], Awaitable[None]]

# The origin of stateless messages the application sends (not a socket).
SERVER_ORIGIN_ID = "server"


class CollabServer:
    """Owns rooms, connections and the store writer of one process."""

    def __init__(self, settings: Settings, store: Store, hooks: Hooks | None = None) -> None:
        self.settings = settings
        self.store = store
        self.hooks = hooks or Hooks()
        self.health = Health()
        self.metrics = Metrics()
        self.rooms: dict[str, _Entry] = {}
        self.connections: dict[str, Connection] = {}
        self.started = False
        self.draining = False
        # Set by the backplane (issue: scale-out): called when a room loads/unloads.
        self.on_room_loaded: list[RoomHook] = []
        self.on_room_unloading: list[RoomHook] = []
        self.on_store_result: list[Callable[[str, float, BaseException | None], None]] = []
        self.writer = Writer(store, debounce=settings.flush_debounce,
                             max_wait=settings.flush_max_wait,
                             compact_threshold=settings.compact_threshold,
                             on_result=self._store_result, on_stored=self._stored)

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        self.health.register("store")
        try:
            await self.store.open()
        except Exception as exc:
            self.health.set_failing("store", str(exc), backend=self.store.name)
            raise
        self.health.set_ok("store", backend=self.store.name)
        self.started = True

    async def stop(self) -> None:
        """Close every socket with 1001, store everything, close the store."""
        self.draining = self.health.draining = True
        for conn in list(self.connections.values()):
            conn.close(1001, "server shutting down", flush=True)
        for name in list(self.rooms):
            await self._unload(name, force=True)
        await self.writer.close()
        await self.store.close()
        self.started = False

    def begin_drain(self) -> None:
        """Readiness fails and new sockets are refused from now on."""
        self.draining = self.health.draining = True
        log.info("draining: readiness now fails, new sockets are refused")

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections.values()):
            conn.close(code, reason, flush=True)

    # -- rooms --------------------------------------------------------------

    async def join(self, name: str, peer: Peer) -> Room:
        """Add ``peer`` to room ``name``, loading the room if needed."""
        while True:
            entry = self.rooms.get(name)
            if entry is None:
                pacer = Pacer(asyncio.get_running_loop(), self.settings.fanout_window)
                entry = self.rooms[name] = _Entry(Room(name, defer=pacer))
                asyncio.get_running_loop().create_task(self._load(name, entry))
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
            if entry.unload_timer is not None:
                entry.unload_timer.cancel()
                entry.unload_timer = None
            entry.room.join(peer)
            return entry.room

    async def _load(self, name: str, entry: _Entry) -> None:
        try:
            data = await self.store.load(name)
            if data:
                entry.room.apply(data, StoreOrigin())
            entry.room.update_listeners.append(
                lambda update, origin: self._on_update(name, update, origin))
            for hook in self.on_room_loaded:
                await hook(entry.room)
        except BaseException as exc:
            self.rooms.pop(name, None)
            entry.ready.set_exception(exc)
            entry.ready.exception()  # joiners re-raise it; silence "never retrieved"
            log.error("loading room %r failed: %s", name, exc)
            return
        entry.state = RoomState.ACTIVE
        entry.ready.set_result(None)
        if self.hooks.on_load is not None:
            await self._call_hook(self.hooks.on_load, RoomEvent(name, len(data or b"")))

    def leave(self, name: str, peer: Peer) -> None:
        entry = self.rooms.get(name)
        if entry is None:
            return
        entry.room.leave(peer)
        if not entry.room.peers and entry.state is RoomState.ACTIVE and entry.unload_timer is None:
            entry.unload_timer = asyncio.get_running_loop().call_later(
                self.settings.room_grace,
                lambda: asyncio.get_running_loop().create_task(self._unload(name)))

    async def _unload(self, name: str, *, force: bool = False) -> None:
        entry = self.rooms.get(name)
        if entry is None or entry.state is not RoomState.ACTIVE:
            return
        if entry.room.peers and not force:
            return
        if entry.unload_timer is not None:
            entry.unload_timer.cancel()
        entry.state = RoomState.UNLOADING
        entry.done = asyncio.get_running_loop().create_future()
        try:
            for hook in self.on_room_unloading:
                await hook(entry.room)
            await self.writer.flush(name)
        except Exception as exc:
            log.error("unloading room %r: %s", name, exc)
        finally:
            entry.room.close()
            self.rooms.pop(name, None)
            entry.done.set_result(None)
            log.debug("room %r unloaded", name)

    def room(self, name: str) -> Room | None:
        entry = self.rooms.get(name)
        return entry.room if entry and entry.state is RoomState.ACTIVE else None

    # -- stateless messages (Hocuspocus) -------------------------------------

    def send_stateless(self, room: str, payload: str, *, origin: Origin | None = None) -> bool:
        """Send a stateless message to every Hocuspocus client of ``room``: those
        here, and through the backplane those on every other instance.

        Returns False (and sends nothing) when the room is not loaded on this
        instance: nobody here has it open, and the backplane relays only what
        a loaded room hands it.
        """
        loaded = self.room(room)
        if loaded is None:
            return False
        loaded.broadcast_stateless(payload, origin or PeerOrigin(SERVER_ORIGIN_ID))
        return True

    def send_stateless_to(self, connection_id: str, room: str, payload: str) -> bool:
        """Send a stateless message to one connection's view of ``room`` (this
        instance only). False when that connection does not have the room open
        here, or its protocol has no stateless messages (y-websocket)."""
        loaded = self.room(room)
        if loaded is None:
            return False
        sent = False
        # A connection's peers carry its id, or "<id>/<session>" for a
        # session-aware Hocuspocus provider.
        for peer_id, peer in list(loaded.peers.items()):
            if peer_id == connection_id or peer_id.startswith(connection_id + "/"):
                frame = peer.codec.stateless(room, payload)
                if frame is not None:
                    peer.send(frame)
                    sent = True
        return sent

    # -- persistence & hooks ------------------------------------------------

    def _on_update(self, name: str, update: bytes, origin: Origin) -> None:
        if isinstance(origin, StoreOrigin):
            return
        self.writer.add(name, update)
        if self.hooks.on_change is not None and isinstance(origin, PeerOrigin):
            asyncio.get_running_loop().create_task(self._call_hook(
                self.hooks.on_change, ChangeEvent(origin.peer_id, name, update)))

    def _store_result(self, room: str, seconds: float, exc: BaseException | None) -> None:
        if exc is None:
            self.health.set_ok("store")
        else:
            self.health.set_failing("store", f"{type(exc).__name__}: {exc}")
        for cb in self.on_store_result:
            cb(room, seconds, exc)

    async def _stored(self, room: str, size: int) -> None:
        if self.hooks.on_store is not None:
            await self._call_hook(self.hooks.on_store, RoomEvent(room, size))

    async def _call_hook(self, hook: Callable[[Any], Awaitable[None]], event: Any) -> None:
        try:
            await hook(event)
        except Exception:
            conn_id = getattr(event, "connection_id", "-")
            log.exception("hook %s failed", getattr(hook, "__name__", hook),
                          extra={"conn_id": conn_id})
