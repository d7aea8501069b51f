"""The documents of one Hocuspocus socket, as a pure state machine.

Decoded frames and authentication results go in; :data:`Action` objects come
out, for the session to carry out (it owns the tasks, the timers and the
rooms). No I/O, no event loop: the tests feed byte literals. A document's
lifecycle::

    WAITING ──Token──▶ OPENING ──allowed, joined──▶ OPEN ──Close──▶ CLOSED
       │                  │ └────denied───▶ DENIED ──Token──▶ OPENING
       └──Close──▶ CLOSED └──Close──▶ CLOSED        (DENIED ──Close──▶ CLOSED)

Frames of a document that is not OPEN yet are queued and replayed, in order,
once it opens. The queue is bounded per socket (``queue_frames`` /
``queue_bytes``), and so are the documents a socket may have at all
(``max_documents``: each holds a room peer and, with a session-aware address,
its own encoded copy of every broadcast), and those not OPEN: an
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

import re
from collections import deque
from collections.abc import Callable, Set
from dataclasses import dataclass

from ..errors import Overloaded, PolicyViolation
from ..rooms.names import validate_room_name
from ..rooms.room import Room
from ..wire import hocuspocus as hp
from ..wire.labels import Label
from .document import DocState, Document

# Provider session ids are Math.random().toString(36).slice(2).
_SESSION_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``frame`` on the socket."""

    frame: bytes
    label: str


@dataclass(frozen=True, slots=True)
class Authenticate:
    """Start authenticating ``doc`` with ``token`` ("" when the provider sent none)."""

    doc: Document
    token: str
    version: str | None


@dataclass(frozen=True, slots=True)
class CancelAuth:
    """Stop authenticating ``doc``: it was closed before it opened."""

    doc: Document


@dataclass(frozen=True, slots=True)
class Join:
    """Join ``doc``'s room, then report it with :meth:`DocumentTable.joined`."""

    doc: Document


@dataclass(frozen=True, slots=True)
class Dispatch:
    """A message of an open document, for its room."""

    doc: Document
    msg: hp.Message


@dataclass(frozen=True, slots=True)
class Leave:
    """Take ``doc`` out of its room."""

    doc: Document


Action = Send | Authenticate | CancelAuth | Join | Dispatch | Leave


class PreAuthBudget:
    """Bytes queued before authentication, over every socket of the process:
    each socket's own bound times many sockets would still be unbounded."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


class DocumentTable:
    # One per Hocuspocus socket: no per-instance __dict__.
    __slots__ = (
        "_budget",
        "_connection_id",
        "_max_documents",
        "_max_room_name",
        "_queue_bytes",
        "_queue_frames",
        "_reserved",
        "_send",
        "docs",
        "queued_bytes",
        "queued_frames",
    )

    def __init__(
        self,
        connection_id: str,
        send: Callable[[bytes, str], None],
        *,
        max_room_name: int,
        reserved: Set[str],
        queue_frames: int,
        queue_bytes: int,
        max_documents: int = 1 << 30,
        budget: PreAuthBudget | None = None,
    ) -> None:
        self._connection_id = connection_id
        self._send = send
        self._max_room_name = max_room_name
        self._reserved = reserved
        self._queue_frames = queue_frames
        self._queue_bytes = queue_bytes
        self._max_documents = max_documents
        self._budget = budget
        self.docs: dict[str, Document] = {}
        self.queued_frames = 0
        self.queued_bytes = 0

    def receive(self, msg: hp.Message, size: int) -> list[Action]:
        """A document frame (anything but Ping, Pong and the server-to-client
        types) of ``size`` bytes. Raises PolicyViolation past a bound."""
        assert not isinstance(msg, (hp.Ping, hp.Pong))
        doc = self.docs.get(msg.address)
        if doc is None:
            if isinstance(msg, hp.Close):
                return []  # nothing open under that address
            doc = self._new(msg.address)
        if doc.state is DocState.OPEN:
            if isinstance(msg, hp.Close):
                return self._close_open(doc)
            return [Dispatch(doc, msg)]
        if isinstance(msg, hp.Close):
            return self._forget(doc)
        if isinstance(msg, hp.AuthToken) and doc.state is not DocState.OPENING:
            doc.to(DocState.OPENING, DocState.WAITING, DocState.DENIED)
            return [Authenticate(doc, msg.token, msg.version)]
        if doc.state is not DocState.DENIED:  # a denied document's frames are dropped
            self._enqueue(doc, msg, size)
        return []

    def denied(self, doc: Document, reason: str) -> list[Action]:
        if not self._opening(doc):
            return []
        self._drain(doc)
        doc.to(DocState.DENIED, DocState.OPENING)
        return [
            Send(
                hp.encode_permission_denied(doc.address, reason or "permission-denied"),
                Label.PERMISSION_DENIED,
            )
        ]

    def allowed(self, doc: Document, readonly: bool) -> list[Action]:
        if not self._opening(doc):
            return []
        doc.readonly = readonly
        scope = hp.Scope.READ_ONLY if readonly else hp.Scope.READ_WRITE
        return [Send(hp.encode_authenticated(doc.address, scope), Label.AUTHENTICATED), Join(doc)]

    def joined(self, doc: Document, room: Room) -> list[Action]:
        """``doc`` is in ``room``: it is OPEN, and what it queued is replayed."""
        doc.room = room
        if not self._opening(doc):
            return [Leave(doc)]  # closed while joining
        doc.to(DocState.OPEN, DocState.OPENING)
        doc.join_step1 = True
        return [Dispatch(doc, msg) for msg, _size in self._drain(doc)]

    def any_open(self) -> bool:
        return any(d.state is DocState.OPEN for d in self.docs.values())

    def close_all(self) -> list[Action]:
        """The socket is gone: cancel what is opening, leave what is open."""
        actions: list[Action] = []
        for doc in self.docs.values():
            self._drain(doc)
            if doc.state is DocState.OPENING:
                actions.append(CancelAuth(doc))
            if doc.room is not None:
                actions.append(Leave(doc))
            doc.state = DocState.CLOSED
        self.docs.clear()
        self.queued_frames = self.queued_bytes = 0
        return actions

    # -- internals ------------------------------------------------------------

    def _opening(self, doc: Document) -> bool:
        return doc.state is DocState.OPENING and self.docs.get(doc.address) is doc

    def _new(self, address: str) -> Document:
        name, session = hp.split_address(address)
        validate_room_name(name, self._max_room_name, self._reserved)
        if session is not None and not _SESSION_RE.fullmatch(session):
            raise PolicyViolation("session id in the document address is not allowed")
        if len(self.docs) >= self._max_documents:
            raise PolicyViolation(f"more than {self._max_documents} documents on one socket")
        limit = self._queue_frames
        if sum(d.state is not DocState.OPEN for d in self.docs.values()) >= limit:
            raise PolicyViolation(f"more than {limit} documents not authenticated on one socket")
        doc = self.docs[address] = Document(self._connection_id, address, name, session, self._send)
        return doc

    def _enqueue(self, doc: Document, msg: hp.Message, size: int) -> None:
        frames, max_bytes = self._queue_frames, self._queue_bytes
        if self.queued_frames + 1 > frames or self.queued_bytes + size > max_bytes:
            raise PolicyViolation(
                f"too much sent before authentication (limit {frames} frames, {max_bytes} bytes)"
            )
        if self._budget is not None and not self._budget.take(size):
            raise Overloaded("the server holds too much sent before authentication; retry")
        doc.queue.append((msg, size))
        doc.queued_bytes += size
        self.queued_frames += 1
        self.queued_bytes += size

    def _drain(self, doc: Document) -> deque[tuple[hp.Message, int]]:
        queue, doc.queue = doc.queue, deque()
        self.queued_frames -= len(queue)
        self.queued_bytes -= doc.queued_bytes
        if self._budget is not None:
            self._budget.give(doc.queued_bytes)
        doc.queued_bytes = 0
        return queue

    def _forget(self, doc: Document) -> list[Action]:
        """A Close before the document opened."""
        actions: list[Action] = [CancelAuth(doc)] if doc.state is DocState.OPENING else []
        self._drain(doc)
        self.docs.pop(doc.address, None)
        doc.to(DocState.CLOSED, DocState.WAITING, DocState.OPENING, DocState.DENIED)
        return actions

    def _close_open(self, doc: Document) -> list[Action]:
        """The provider left this document (detach/destroy); the socket stays.
        Hocuspocus confirms with a Close carrying this reason."""
        self.docs.pop(doc.address, None)
        doc.to(DocState.CLOSED, DocState.OPEN)
        return [Leave(doc), Send(hp.encode_close(doc.address, "provider_initiated"), Label.CLOSE)]
