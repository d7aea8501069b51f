"""The Hocuspocus endpoint: many documents over one socket.

Roles, as in Hocuspocus: the session drives the socket; each document opened
on it is a :class:`~collab.hocuspocus.document.Document` — the room peer,
with its own authentication and scope. Which document is in which state, and
what a frame does to it, is decided by the pure
:class:`~collab.hocuspocus.documents.DocumentTable`; the session only carries
out its actions: it runs the authentication tasks, the keepalive timer, and
the room calls.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

from starlette.types import Receive, Scope, Send

from ..errors import CloseCode, CloseError, Overloaded, PolicyViolation, StoreError
from ..hooks import HookRunner, StatelessEvent
from ..observability.metrics import Metrics
from ..rooms.room import PeerOrigin, Room
from ..tasks import TaskSet
from ..transport.connection import Connection, State
from ..transport.limits import TokenBucket
from ..transport.session import Session
from ..wire import hocuspocus as hp
from ..wire import ywebsocket as yp
from ..wire.labels import Label
from . import documents as dt
from .document import DocState, Document
from .readonly import adds_nothing

if TYPE_CHECKING:
    from ..server import CollabServer

log = logging.getLogger("collab.hocuspocus")

# Stateless messages waiting for the on_stateless hook, per socket; past this
# the client is sending faster than the hook handles them (closed with 1013).
STATELESS_BACKLOG = 256
# Application-level Pings a client may send at once before COLLAB_PING_ANSWER_RATE applies.
PING_BURST = 10.0


def _answers_ping(version: str | None) -> bool:
    """Providers from 4.0 send their version with the token and answer Ping;
    older ones send none and would misread a bare Ping as a document frame."""
    major = (version or "").split(".", 1)[0]
    return major.isdigit() and int(major) >= 4


class HocuspocusSession(Session):
    """Drives one Hocuspocus socket: documents open, sync and close independently."""

    endpoint = "hocuspocus"

    def __init__(
        self,
        server: CollabServer,
        hooks: HookRunner,
        metrics: Metrics,
        scope: Scope,
        receive: Receive,
        send: Send,
        conn: Connection,
    ) -> None:
        super().__init__(server, hooks, metrics, scope, receive, send, conn)
        s = self.settings
        self.table = dt.DocumentTable(
            conn.id,
            conn.send,
            max_room_name=s.max_room_name,
            reserved=s.reserved_paths,
            queue_frames=s.auth_queue_frames,
            queue_bytes=s.auth_queue_bytes,
            max_documents=s.max_documents_per_socket,
            budget=server.preauth,
        )
        self._pings = TokenBucket(s.ping_answer_rate, PING_BURST)
        # Made on first use: an idle socket costs neither.
        self._task_set: TaskSet | None = None
        self._opening: dict[Document, asyncio.Task[None]] | None = None
        self._stateless: deque[StatelessEvent] = deque()
        self._stateless_task: asyncio.Task[None] | None = None
        self._ping_timer: asyncio.TimerHandle | None = None

    @property
    def _tasks(self) -> TaskSet:
        if self._task_set is None:
            self._task_set = TaskSet(f"hocuspocus {self.conn.id}")
        return self._task_set

    @property
    def docs(self) -> dict[str, Document]:
        return self.table.docs

    def _doc_extra(self, doc: Document) -> dict[str, str]:
        return {"conn_id": self.conn.id, "room": doc.name}

    async def run(self) -> None:
        try:
            self.server.check_open()
        except CloseError as exc:
            await self.accept()
            await self.reject(exc.code, exc.reason)
            return
        await self.accept()
        # Unlike y-websocket, a socket here is accepted before any token: one
        # that never gets a document authenticated must not sit on its
        # pre-auth queue forever (a client that answers pings would).
        deadline = asyncio.get_running_loop().call_later(
            self.settings.auth_timeout, self._auth_deadline
        )
        try:
            await self.receive_loop()
        finally:
            deadline.cancel()

    def _auth_deadline(self) -> None:
        if self.conn.state is State.OPEN and not self.rooms and not self.table.any_open():
            log.info(
                "no document authenticated within %gs: closing",
                self.settings.auth_timeout,
                extra=self.extra,
            )
            self.metrics.frame_rejected(self.endpoint, "auth_timeout")
            self.conn.close(CloseCode.TIMEOUT, "no document authenticated in time")

    # -- frames in ------------------------------------------------------------

    def handle_frame(self, frame: bytes) -> None:
        msg = hp.decode_frame(frame)
        kind = hp.message_kind(msg)
        self.conn.stats.last_frame_type = kind
        self.count_frame_in(kind, len(frame))
        if isinstance(msg, hp.Ping):
            if self._pings.take():
                self.conn.send(hp.PONG, Label.PONG)
            else:  # a ping flood must not grow our send buffers
                self.metrics.frame_rejected(self.endpoint, "ping_rate")
        elif isinstance(msg, hp.Pong):
            pass
        elif isinstance(msg, hp.BroadcastStateless):
            # Server-internal (instance-to-instance in Hocuspocus): from a
            # client it would let anyone broadcast without the on_stateless
            # hook's say. Hocuspocus 4 rejects it too.
            raise PolicyViolation("BroadcastStateless is server-internal; send Stateless")
        elif isinstance(msg, (hp.SyncStatus, hp.Authenticated, hp.PermissionDenied)):
            log.debug("ignoring server-to-client %s from a client", kind, extra=self.extra)
        else:
            self._carry_out(self.table.receive(msg, len(frame)))

    def _carry_out(self, actions: list[dt.Action]) -> None:
        """Do what the document table decided, in order. A Dispatch stops the
        replay once the socket or the document is no longer open."""
        for action in actions:
            if isinstance(action, dt.Send):
                self.conn.send(action.frame, action.label)
            elif isinstance(action, dt.Dispatch):
                if self.conn.state is not State.OPEN or action.doc.state is not DocState.OPEN:
                    return
                self.dispatch(action.doc, action.msg)
            elif isinstance(action, dt.Authenticate):
                self._start_opening(action)
            elif isinstance(action, dt.CancelAuth):
                task = self._opening.pop(action.doc, None) if self._opening else None
                if task is not None:
                    task.cancel()
            elif isinstance(action, dt.Leave):
                self._leave(action.doc)
            else:  # a Join is carried out by the opening task itself
                raise RuntimeError(f"unexpected action {action!r}")

    # -- opening a document ---------------------------------------------------

    def _start_opening(self, action: dt.Authenticate) -> None:
        if (
            self._ping_timer is None
            and _answers_ping(action.version)
            and self.settings.ping_interval
        ):
            self._arm_ping()
        # A provider without a token sends ""; then ?token= / the subprotocol
        # (as on the y-websocket endpoint) may carry one.
        token = action.token or self.token()
        doc = action.doc
        task = self._tasks.spawn(self._open(doc, token), name=f"open {doc.address}")
        opening = self._opening = self._opening if self._opening is not None else {}
        opening[doc] = task
        task.add_done_callback(lambda _t: opening.pop(doc, None))

    async def _open(self, doc: Document, token: str) -> None:
        try:
            result = await self.authenticate(doc.name, token=token)
            if self.conn.state is not State.OPEN:
                return
            if not result.allowed:
                self._carry_out(self.table.denied(doc, result.reason))
                return
            for action in self.table.allowed(doc, result.readonly):
                if not isinstance(action, dt.Join):
                    self._carry_out([action])
                    continue
                try:
                    room = await self.server.rooms.join(doc.name, doc)
                except StoreError as exc:
                    log.error("cannot load room: %s", exc, extra=self._doc_extra(doc))
                    self.conn.close(CloseCode.TRY_AGAIN_LATER, "document store unavailable")
                    return
                # Nothing awaits between joining and OPEN: no frame can slip past the queue.
                self._replay(self.table.joined(doc, room))
                await self.connected(doc.name, result)
        except Exception:
            log.exception("opening the document failed", extra=self._doc_extra(doc))
            self.conn.close(CloseCode.INTERNAL, "internal error")

    def _replay(self, actions: list[dt.Action]) -> None:
        try:
            self._carry_out(actions)
        except CloseError as exc:
            self.metrics.frame_rejected(self.endpoint, type(exc).__name__)
            self._close_for(exc)

    # -- an open document -----------------------------------------------------

    def dispatch(self, doc: Document, msg: hp.Message) -> None:
        room = doc.room
        assert room is not None
        if isinstance(msg, hp.Sync):
            sync = msg.message
            if isinstance(sync, yp.SyncStep1):
                room.sync_step1(doc, sync.state_vector)
                # Hocuspocus answers a step1 with step2 and its own step1, so the
                # provider sends what we lack and gets a SyncStatus that settles
                # its unsyncedChanges (forceSync relies on it). Room.join already
                # sent one step1, and every change since reached the provider as
                # an update, so the first step1 after joining needs no second.
                if msg.reply:
                    pass
                elif doc.join_step1:
                    doc.join_step1 = False
                else:
                    doc.send(doc.codec.step1(doc.name, room.state_vector()), Label.STEP1)
            else:
                self._apply(doc, room, sync)
        elif isinstance(msg, hp.Awareness):
            room.peer_awareness(doc, msg.update)
        elif isinstance(msg, hp.QueryAwareness):
            room.query_awareness(doc)
        elif isinstance(msg, hp.Stateless):
            self._on_stateless(doc, msg.payload)
        elif isinstance(msg, hp.AuthToken):
            # Hocuspocus calls onTokenSync here; collab has no such hook.
            log.debug("token for an open document ignored", extra=self._doc_extra(doc))

    def _apply(self, doc: Document, room: Room, sync: yp.SyncStep2 | yp.SyncUpdate) -> None:
        if doc.readonly:
            # Hocuspocus' rule: a read-only step2 that adds nothing is acknowledged.
            applied = isinstance(sync, yp.SyncStep2) and adds_nothing(
                sync.update, room.state_vector(), room.diff(room.state_vector())
            )
        else:
            applied = room.sync_update(doc, sync.update)
        doc.send(hp.encode_sync_status(doc.address, applied), Label.SYNC_STATUS)

    def _leave(self, doc: Document) -> None:
        if doc.room is not None:
            doc.room = None
            self.server.rooms.leave(doc.name, doc)

    # -- stateless ------------------------------------------------------------

    def _on_stateless(self, doc: Document, payload: str) -> None:
        if self.hooks.hooks.on_stateless is None:
            return
        if len(self._stateless) >= STATELESS_BACKLOG:
            raise Overloaded("stateless messages arrive faster than the on_stateless hook runs")

        def reply(answer: str) -> None:
            frame = doc.codec.stateless(doc.name, answer)
            if frame is not None and doc.state is DocState.OPEN:
                doc.send(frame, Label.STATELESS)

        def broadcast(message: str) -> None:
            self.server.send_stateless(doc.name, message, origin=PeerOrigin(doc.id))

        self._stateless.append(
            StatelessEvent(self.conn.id, doc.name, payload, reply=reply, broadcast=broadcast)
        )
        if self._stateless_task is None:
            self._stateless_task = self._tasks.spawn(self._run_stateless(), name="stateless")

    async def _run_stateless(self) -> None:
        """Call the hook for one socket's stateless messages strictly in order."""
        try:
            while self._stateless:
                event = self._stateless.popleft()
                await self.hooks.run(self.hooks.hooks.on_stateless, event)
        finally:
            self._stateless_task = None

    # -- keepalive ------------------------------------------------------------

    def _arm_ping(self) -> None:
        """A provider reconnects when it has heard nothing for its
        messageReconnectTimeout (30 s), and WebSocket-level pings never reach
        its JavaScript; an idle document without awareness would churn. So
        sockets with a 4.x provider (which answers an app-level Ping with
        Pong) get one every ``ping_interval``, from a loop timer. Dead peers
        are found by the WebSocket-level ping of the ASGI server, not here."""
        loop = asyncio.get_running_loop()
        self._ping_timer = loop.call_later(self.settings.ping_interval, self._ping)

    def _ping(self) -> None:
        if self.conn.state is State.OPEN:
            self.conn.send(hp.PING, Label.PING)
            self._arm_ping()

    # -- end ------------------------------------------------------------------

    def on_leave(self) -> None:
        if self._ping_timer is not None:
            self._ping_timer.cancel()
        self._stateless.clear()
        if self._task_set is not None:
            self._task_set.cancel()
        self._carry_out(self.table.close_all())
