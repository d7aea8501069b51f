"""The server of one process: its sockets, its rooms, its lifecycle.

The room registry (:mod:`collab.rooms.registry`) loads and unloads rooms; the
server tracks the open connections, knows whether it is started or draining,
and sends stateless messages on the application's behalf. Lifecycle::

    created ──start()──▶ started ──begin_drain()──▶ draining ──stop()──▶ stopped

A socket is refused (1011 before start, 1013 while draining) unless started.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from .config import Settings
from .errors import CloseCode, CloseError, Overloaded
from .hocuspocus.documents import PreAuthBudget
from .observability.health import Health
from .observability.store_report import StoreReport
from .rooms.registry import RoomRegistry
from .rooms.room import Origin, PeerOrigin, Room
from .stores import Store
from .stores.writer import Writer
from .transport.connection import Connection
from .wire.labels import Label

log = logging.getLogger("collab.server")

# The origin of stateless messages the application sends (not a socket).
SERVER_ORIGIN_ID = "server"


class CollabServer:
    """Owns the connections of one process and drives its rooms' lifecycle."""

    def __init__(
        self,
        settings: Settings,
        *,
        store: Store,
        writer: Writer,
        rooms: RoomRegistry,
        health: Health,
        store_report: StoreReport,
    ) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.rooms = rooms
        self.health = health
        self._store_report = store_report
        self.connections: dict[str, Connection] = {}
        # Hocuspocus frames queued before authentication, over every socket.
        self.preauth = PreAuthBudget(settings.auth_queue_total_bytes)
        self.started = False
        self.draining = False
        # Rooms whose edits the store had not taken when stop() ended: data
        # lost, and `collab serve` exits non-zero for it.
        self.unsaved_rooms: list[str] = []

    # -- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        if self.started:
            raise RuntimeError("collab server already started")
        try:
            await self.store.open()
        except Exception as exc:  # the store says why (StoreError); anything else is loud too
            self._store_report.failed(str(exc))
            raise
        self._store_report.opened()
        self.started = True

    async def stop(self) -> None:
        """Close every socket with 1001, store everything, close the store.

        Bounded: every store call gives up after COLLAB_STORE_TIMEOUT, and
        rooms are unloaded and flushed all at once. Rooms whose edits could
        not be stored are logged by name and kept in ``unsaved_rooms``.
        """
        self.begin_drain()
        self.close_all(CloseCode.GOING_AWAY, "server shutting down")
        await self.rooms.unload_all()
        await self.writer.close()
        self.unsaved_rooms = self.writer.unsaved()
        if self.unsaved_rooms:
            log.error(
                "edits of %d room(s) could not be stored and are lost: %s",
                len(self.unsaved_rooms),
                ", ".join(map(repr, self.unsaved_rooms)),
            )
        await self.store.close()
        self.started = False

    def begin_drain(self) -> None:
        """Readiness fails and new sockets are refused from now on."""
        if not self.draining:
            self.draining = True
            self.health.begin_drain()
            log.info("draining: readiness now fails, new sockets are refused")

    def check_open(self) -> None:
        """Raise the CloseError a new socket gets unless the server takes sockets."""
        if not self.started:
            raise CloseError(
                "collab server not started: is its lifespan wired?", CloseCode.INTERNAL
            )
        if self.draining:
            raise Overloaded("server is draining; reconnect to another instance")

    # -- connections --------------------------------------------------------

    @contextlib.contextmanager
    def track(self, conn: Connection) -> Iterator[None]:
        """Count ``conn`` among the open connections while the block runs."""
        self.connections[conn.id] = conn
        try:
            yield
        finally:
            self.connections.pop(conn.id, None)

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self.connections.values()):
            conn.close(code, reason, flush=True)

    # -- rooms --------------------------------------------------------------

    def room(self, name: str) -> Room | None:
        return self.rooms.get(name)

    # -- stateless messages (Hocuspocus) -------------------------------------

    def send_stateless(self, room: str, payload: str, *, origin: Origin | None = None) -> bool:
        """Send a stateless message to every Hocuspocus client of ``room``: those
        here, and through the backplane those on every other instance.

        Returns False (and sends nothing) when the room is not loaded on this
        instance: nobody here has it open, and the backplane relays only what
        a loaded room hands it.
        """
        loaded = self.rooms.get(room)
        if loaded is None:
            return False
        loaded.broadcast_stateless(payload, origin or PeerOrigin(SERVER_ORIGIN_ID))
        return True

    def send_stateless_to(self, connection_id: str, room: str, payload: str) -> bool:
        """Send a stateless message to one connection's view of ``room`` (this
        instance only). False when that connection does not have the room open
        here, or its protocol has no stateless messages (y-websocket)."""
        loaded = self.rooms.get(room)
        if loaded is None:
            return False
        sent = False
        for peer in list(loaded.peers.values()):
            if peer.connection_id == connection_id:
                frame = peer.codec.stateless(room, payload)
                if frame is not None:
                    peer.send(frame, Label.STATELESS)
                    sent = True
        return sent
