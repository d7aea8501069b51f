"""The Hocuspocus endpoint: many documents over one socket.

Roles, as in Hocuspocus: the session drives the socket; each document opened
on it is a :class:`~collab.hocuspocus.peer.Document` — the room peer, with its own authentication,
scope and queue. A document's lifecycle::

    WAITING ──Token──▶ OPENING ──allowed──▶ OPEN ──Close──▶ (gone)
       │                  │ └────denied───▶ DENIED ──Token──▶ OPENING
       └──Close──▶ (gone) └──Close──▶ (gone)

Frames of a document that is not OPEN yet are queued and replayed, in order,
once it opens. The queue is bounded per socket (``auth_queue_frames`` /
``auth_queue_bytes``), and so is the number of documents not OPEN: an
unauthenticated client that outgrows the bound is closed with 1008 — memory
exhaustion before authentication was a real Hocuspocus advisory
(GHSA-xwhh-v746-pj9m). Frames of a DENIED document are dropped rather than
queued: a denied provider keeps sending (its awareness renews every 15 s), and
queueing that would, after a while, close the socket and with it the
documents that were allowed.

A denial never closes the socket (Hocuspocus neither): the provider's other
documents keep working, and the denied provider may retry with a new token.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from typing import TYPE_CHECKING, Any

from starlette.types import Receive, Scope, Send

from .. import protocol as yp
from ..connection import Connection, State
from ..errors import CloseCode, CloseError, Overloaded, PolicyViolation, StoreError
from ..hooks import ConnectEvent, StatelessEvent
from ..room import PeerOrigin, Room
from ..session import Session
from ..ywebsocket import validate_room_name
from . import protocol as hp
from .peer import DocState, Document
from .readonly import adds_nothing

if TYPE_CHECKING:
    from ..server import CollabServer

log = logging.getLogger("collab.hocuspocus")

# Stateless messages waiting for the on_stateless hook, per socket; past this
# the client is sending faster than the hook handles them (closed with 1013).
STATELESS_BACKLOG = 256
# Provider session ids are Math.random().toString(36).slice(2).
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _answers_ping(version: str | None) -> bool:
    """Providers from 4.0 send their version with the token and answer Ping;
    older ones send none and would misread a bare Ping as a document frame."""
    major = (version or "").split(".", 1)[0]
    return major.isdigit() and int(major) >= 4


class HocuspocusSession(Session):
    """Drives one Hocuspocus socket: documents open, sync and close independently."""

    endpoint = "hocuspocus"

    def __init__(self, server: CollabServer, scope: Scope, receive: Receive, send: Send,
                 conn: Connection) -> None:
        super().__init__(server, scope, receive, send, conn)
        self.docs: dict[str, Document] = {}
        self._queued_frames = 0
        self._queued_bytes = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stateless: deque[StatelessEvent] = deque()
        self._stateless_task: asyncio.Task[None] | None = None
        self._opened: list[str] = []
        self._keepalive: asyncio.Task[None] | None = None

    def _doc_extra(self, doc: Document) -> dict[str, str]:
        return {"conn_id": self.conn.id, "room": doc.name}

    async def run(self) -> None:
        try:
            self.check_open()
        except CloseError as exc:
            await self.accept()
            await self.reject(exc.code, exc.reason)
            return
        await self.accept()
        await self.receive_loop()

    def frame_kind_out(self, frame: bytes) -> str:
        return hp.frame_kind(frame)

    # -- frames in ------------------------------------------------------------

    def handle_frame(self, frame: bytes) -> None:
        msg = hp.decode_frame(frame)
        kind = hp.message_kind(msg)
        self.conn.stats.last_frame_type = kind
        self.count_frame_in(kind, len(frame))
        if isinstance(msg, hp.Ping):
            self.conn.send(hp.PONG)
            return
        if isinstance(msg, hp.Pong):
            return
        if isinstance(msg, hp.BroadcastStateless):
            # Server-internal (instance-to-instance in Hocuspocus): from a
            # client it would let anyone broadcast without the on_stateless
            # hook's say. Hocuspocus 4 rejects it too.
            raise PolicyViolation("BroadcastStateless is server-internal; send Stateless")
        if isinstance(msg, (hp.SyncStatus, hp.Authenticated, hp.PermissionDenied)):
            log.debug("ignoring server-to-client %s from a client", kind, extra=self.extra)
            return
        doc = self.docs.get(msg.address)
        if doc is None:
            if isinstance(msg, hp.Close):
                return  # nothing open under that address
            doc = self._new_document(msg.address)
        if doc.state is DocState.OPEN:
            self._dispatch(doc, msg)
        elif isinstance(msg, hp.Close):
            self._forget(doc)
        elif isinstance(msg, hp.AuthToken) and doc.state is not DocState.OPENING:
            self._start_opening(doc, msg)
        elif doc.state is DocState.DENIED:
            pass  # not authorized: dropped (module docstring)
        else:
            self._enqueue(doc, msg, len(frame))

    def _new_document(self, address: str) -> Document:
        name, session = hp.split_address(address)
        validate_room_name(name, self.settings.max_room_name, self.settings.reserved_paths)
        if session is not None and not _SESSION_RE.fullmatch(session):
            raise PolicyViolation("session id in the document address is not allowed")
        limit = self.settings.auth_queue_frames
        if sum(d.state is not DocState.OPEN for d in self.docs.values()) >= limit:
            raise PolicyViolation(f"more than {limit} documents not authenticated on one socket")
        doc = self.docs[address] = Document(self.conn, address, name, session)
        return doc

    def _enqueue(self, doc: Document, msg: hp.Message, size: int) -> None:
        frames, max_bytes = self.settings.auth_queue_frames, self.settings.auth_queue_bytes
        if self._queued_frames + 1 > frames or self._queued_bytes + size > max_bytes:
            raise PolicyViolation(
                f"too much sent before authentication (limit {frames} frames, {max_bytes} bytes)")
        doc.queue.append((msg, size))
        doc.queued_bytes += size
        self._queued_frames += 1
        self._queued_bytes += size

    def _drain_queue(self, doc: Document) -> deque[tuple[hp.Message, int]]:
        queue, doc.queue = doc.queue, deque()
        self._queued_frames -= len(queue)
        self._queued_bytes -= doc.queued_bytes
        doc.queued_bytes = 0
        return queue

    # -- opening a document ---------------------------------------------------

    def _start_opening(self, doc: Document, msg: hp.AuthToken) -> None:
        doc.state = DocState.OPENING
        if self._keepalive is None and _answers_ping(msg.version) and self.settings.ping_interval:
            self._keepalive = asyncio.get_running_loop().create_task(self._send_pings())
        # A provider without a token sends ""; then ?token= / the subprotocol
        # (as on the y-websocket endpoint) may carry one.
        token = msg.token or self.token()
        task = asyncio.get_running_loop().create_task(self._open(doc, token))
        doc.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, doc: Document, token: str) -> None:
        try:
            result = await self.authenticate(doc.name, token=token)
            if doc.state is not DocState.OPENING or self.conn.state is not State.OPEN:
                return
            if not result.allowed:
                self._drain_queue(doc)
                doc.state = DocState.DENIED
                doc.task = None
                doc.send(hp.encode_permission_denied(doc.address,
                                                     result.reason or "permission-denied"))
                return
            doc.readonly = result.readonly
            scope = hp.Scope.READ_ONLY if result.readonly else hp.Scope.READ_WRITE
            doc.send(hp.encode_authenticated(doc.address, scope))
            try:
                room = await self.server.join(doc.name, doc)
            except StoreError as exc:
                log.error("cannot load room: %s", exc, extra=self._doc_extra(doc))
                self.conn.close(CloseCode.TRY_AGAIN_LATER, "document store unavailable")
                return
            # Nothing awaits between joining and OPEN: no frame can slip past the queue.
            doc.room = room
            doc.state = DocState.OPEN
            doc.task = None
            doc.join_step1 = True
            self._note_opened(doc.name)
            self._replay(doc)
            hook = self.server.hooks.on_connect
            if hook is not None:
                await self.server._call_hook(hook, ConnectEvent(
                    self.conn.id, doc.name, doc.readonly, dict(result.context)))
        except Exception:
            log.exception("opening the document failed", extra=self._doc_extra(doc))
            self.conn.close(CloseCode.INTERNAL, "internal error")

    def _note_opened(self, name: str) -> None:
        if name not in self._opened:
            self._opened.append(name)
            self.conn.rooms.append(name)
            # The close record and log lines name every document the socket opened.
            self.room_name = ",".join(self._opened)

    def _replay(self, doc: Document) -> None:
        for msg, _size in self._drain_queue(doc):
            if self.conn.state is not State.OPEN or doc.state is not DocState.OPEN:
                return
            try:
                self._dispatch(doc, msg)
            except CloseError as exc:
                self.metrics.frame_rejected(self.endpoint, type(exc).__name__)
                self._close_for(exc)
                return

    def _forget(self, doc: Document) -> None:
        """Drop a document that is not OPEN (a Close before it opened)."""
        if doc.task is not None:
            doc.task.cancel()
            doc.task = None
        self._drain_queue(doc)
        self.docs.pop(doc.address, None)

    # -- an open document -----------------------------------------------------

    def _dispatch(self, doc: Document, msg: hp.Message) -> None:
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
                    doc.send(doc.codec.step1(doc.name, room.state_vector()))
            else:
                self._apply(doc, room, sync)
        elif isinstance(msg, hp.Awareness):
            room.peer_awareness(doc, msg.update)
        elif isinstance(msg, hp.QueryAwareness):
            room.query_awareness(doc)
        elif isinstance(msg, hp.Stateless):
            self._on_stateless(doc, msg.payload)
        elif isinstance(msg, hp.Close):
            self._close_document(doc)
        elif isinstance(msg, hp.AuthToken):
            # Hocuspocus calls onTokenSync here; collab has no such hook.
            log.debug("token for an open document ignored", extra=self._doc_extra(doc))

    def _apply(self, doc: Document, room: Room, sync: yp.SyncStep2 | yp.SyncUpdate) -> None:
        if doc.readonly:
            # Hocuspocus' rule: a read-only step2 that adds nothing is acknowledged.
            applied = isinstance(sync, yp.SyncStep2) and adds_nothing(
                sync.update, room.state_vector(), room.diff(room.state_vector()))
        else:
            applied = room.sync_update(doc, sync.update)
        doc.send(hp.encode_sync_status(doc.address, applied))

    def _close_document(self, doc: Document) -> None:
        """The provider left this document (detach/destroy); the socket stays."""
        self.docs.pop(doc.address, None)
        self._leave(doc)
        # Hocuspocus confirms with a Close carrying this reason.
        doc.send(hp.encode_close(doc.address, "provider_initiated"))

    def _leave(self, doc: Document) -> None:
        if doc.room is not None:
            doc.room = None
            self.server.leave(doc.name, doc)
            if doc.name in self.conn.rooms:
                self.conn.rooms.remove(doc.name)
        doc.state = DocState.WAITING

    # -- stateless ------------------------------------------------------------

    def _on_stateless(self, doc: Document, payload: str) -> None:
        hook = self.server.hooks.on_stateless
        if hook is None:
            return
        if len(self._stateless) >= STATELESS_BACKLOG:
            raise Overloaded("stateless messages arrive faster than the on_stateless hook runs")

        def reply(answer: str) -> None:
            frame = doc.codec.stateless(doc.name, answer)
            if frame is not None and doc.state is DocState.OPEN:
                doc.send(frame)

        def broadcast(message: str) -> None:
            self.server.send_stateless(doc.name, message, origin=PeerOrigin(doc.id))

        self._stateless.append(StatelessEvent(self.conn.id, doc.name, payload,
                                              reply=reply, broadcast=broadcast))
        if self._stateless_task is None:
            self._stateless_task = asyncio.get_running_loop().create_task(self._run_stateless())

    async def _run_stateless(self) -> None:
        """Call the hook for one socket's stateless messages strictly in order."""
        try:
            while self._stateless:
                hook = self.server.hooks.on_stateless
                event = self._stateless.popleft()
                if hook is not None:
                    await self.server._call_hook(hook, event)
        finally:
            self._stateless_task = None

    # -- keepalive ------------------------------------------------------------

    async def _send_pings(self) -> None:
        """A provider reconnects when it has heard nothing for its
        messageReconnectTimeout (30 s), and WebSocket-level pings never reach
        its JavaScript; an idle document without awareness would churn. So
        sockets with a 4.x provider (which answers an app-level Ping with
        Pong) get one every ``ping_interval``. Dead peers are found by the
        WebSocket-level ping of the ASGI server, not here."""
        interval = self.settings.ping_interval
        while self.conn.state is State.OPEN:
            await asyncio.sleep(interval)
            self.conn.send(hp.PING)

    # -- end ------------------------------------------------------------------

    def on_leave(self) -> None:
        tasks: list[Any] = [*self._tasks, self._stateless_task, self._keepalive]
        for task in tasks:
            if task is not None:
                task.cancel()
        self._stateless.clear()
        for doc in list(self.docs.values()):
            self._leave(doc)
        self.docs.clear()
