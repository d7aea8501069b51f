"""One document: a pycrdt ``Doc``, its awareness table, and its local peers.

The room takes (peer, message) and decides what to send to whom. It knows no
Starlette and no Redis: sockets drive it through :class:`Peer` objects, and
what it integrates reaches its :class:`RoomObserver` objects (the store
writer, the change hook, the backplane), all given when it is built. Every
call is synchronous and runs on the event loop thread, so a room needs no lock.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pycrdt import Doc, merge_updates

from ..errors import InvalidPayload, PolicyViolation, TooLarge, is_pycrdt_rejection
from ..wire import awareness as aw
from ..wire.labels import Label
from .awareness import AwarenessTable


class Codec(Protocol):
    """Frames a room-level message for one wire protocol.

    Peers sharing a codec object get byte-identical frames, so a broadcast is
    encoded once per codec, not once per peer.
    """

    def step1(self, room: str, state_vector: bytes) -> bytes: ...
    def step2(self, room: str, update: bytes) -> bytes: ...
    def update(self, room: str, update: bytes) -> bytes: ...
    def awareness(self, room: str, update: bytes) -> bytes: ...
    def stateless(self, room: str, payload: str) -> bytes | None:
        """A stateless message frame, or None if the protocol has none."""


class Peer(Protocol):
    """A local socket (or one document of a multiplexed socket) in a room.

    ``id`` is unique among the room's peers; ``connection_id`` names the
    socket it rides on (several Hocuspocus providers may share one socket).
    """

    @property
    def id(self) -> str: ...
    @property
    def connection_id(self) -> str: ...
    @property
    def readonly(self) -> bool: ...
    @property
    def codec(self) -> Codec: ...
    def send(self, frame: bytes, label: str) -> None:
        """Queue a frame; never blocks, never raises (overflow closes the peer)."""


# Transaction origins: a change that came from the backplane or the store is
# never published back (Hocuspocus lesson: a typed origin, not a guess).
@dataclass(frozen=True, slots=True)
class PeerOrigin:
    peer_id: str


@dataclass(frozen=True, slots=True)
class RemoteOrigin:
    instance_id: str


@dataclass(frozen=True, slots=True)
class StoreOrigin:
    pass


Origin = PeerOrigin | RemoteOrigin | StoreOrigin


class RoomObserver(Protocol):
    """Told of every change a room integrates, with its origin."""

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None: ...
    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None: ...
    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None: ...


Defer = Callable[[Callable[[], object]], object]


@dataclass(frozen=True, slots=True)
class RoomLimits:
    """What one room accepts (README "Limits"). ``max_document_bytes`` 0 =
    unbounded; the awareness limits apply per peer."""

    max_document_bytes: int = 0
    max_awareness_state_bytes: int | None = None
    max_awareness_clients: int = 1 << 30


# The document size is an estimate (bytes integrated since the last exact
# measure); it is measured again, by encoding the document, only once this
# share of the limit has arrived since: a refusal may come up to 1/64 early,
# and a document near its limit is not re-encoded on every keystroke.
_REMEASURE_SHARE = 64
# The state vector of a client that has nothing yet.
EMPTY_STATE_VECTOR = b"\x00"


class Room:
    """``defer`` (a :class:`~collab.rooms.pacer.Pacer`, or ``loop.call_soon``)
    batches fan-out: updates integrated before it fires reach peers as one
    merged update (a burst of N edits costs one send per peer, not N).
    Without it, fan-out is immediate.
    """

    def __init__(
        self,
        name: str,
        *,
        observers: Sequence[RoomObserver] = (),
        defer: Defer | None = None,
        limits: RoomLimits = RoomLimits(),
    ) -> None:
        self.name = name
        self._observers = tuple(observers)
        self._defer = defer
        self._scheduled = False
        self.limits = limits
        self._pending: list[tuple[bytes, str | None]] = []
        # Awareness changes waiting for fan-out (paced like updates): the
        # latest entry per client id, with its origin.
        self._pending_aw: dict[int, tuple[aw.Entry, Origin]] = {}
        self.doc: Doc[Any] = Doc()
        self.awareness = AwarenessTable()
        self.peers: dict[str, Peer] = {}
        # Awareness client ids each local peer introduced, and who introduced
        # each id: only its peer may change or remove it, and all of them are
        # removed when that peer leaves, whatever it set or removed meanwhile.
        self._peer_clients: dict[str, set[int]] = {}
        self._owners: dict[int, str] = {}
        self._origin: Origin | None = None
        self._full: bytes | None = None  # the whole document, encoded (see diff)
        # Document size: exact at the last measure, plus what arrived since.
        self._measured = 0
        self._since = 0
        # Loaded past max_document_bytes: served, but no peer may add to it.
        self.oversized = False
        self._sub = self.doc.observe(self._on_doc_update)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} peers={len(self.peers)}>"

    # -- document -----------------------------------------------------------

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def diff(self, state_vector: bytes | None = None) -> bytes:
        """The update a holder of ``state_vector`` is missing (all if None).

        The whole document (what every fresh client asks for, with an empty
        state vector) is encoded once and kept until the next change: a herd
        of joiners on a large document costs one encoding, not one each
        (scenario E). It is the size of the document, which the room holds
        anyway, and goes with the next edit.
        """
        if not state_vector or state_vector == EMPTY_STATE_VECTOR:
            full = self._full
            if full is None:
                full = self._full = self.doc.get_update()
            return full
        try:
            return self.doc.get_update(state_vector)
        except ValueError as exc:
            raise InvalidPayload("invalid state vector") from exc

    def apply(self, update: bytes, origin: Origin) -> None:
        """Apply an update; integrated changes reach peers and observers.

        pycrdt decodes the whole update before integrating it, so a rejected
        update leaves the document untouched.
        """
        if update == b"\x00\x00":  # the empty update Yjs sends on sync
            return
        self._origin = origin
        try:
            self.doc.apply_update(update)
        except BaseException as exc:
            if not is_pycrdt_rejection(exc):
                raise
            raise InvalidPayload(f"update rejected: {exc}") from None
        finally:
            self._origin = None

    @property
    def size(self) -> int:
        """The document's encoded size, estimated (see ``_REMEASURE_SHARE``)."""
        return self._measured + self._since

    def measured(self, size: int | None = None) -> int:
        """Take ``size`` (e.g. the bytes just loaded) or the encoded size as exact."""
        self._measured = len(self.diff()) if size is None else size
        self._since = 0
        return self._measured

    def _check_size(self, update: bytes) -> None:
        limit = self.limits.max_document_bytes
        if not limit or self.size + len(update) <= limit:
            return
        if self._since >= limit // _REMEASURE_SHARE:
            self.measured()
        if self.size + len(update) > limit:
            raise TooLarge("document too large")

    def _on_doc_update(self, event: object) -> None:
        self._full = None
        update: bytes = event.update  # type: ignore[attr-defined]
        self._since += len(update)
        origin = self._origin if self._origin is not None else StoreOrigin()
        exclude = origin.peer_id if isinstance(origin, PeerOrigin) else None
        if self._defer is None:
            self._broadcast(lambda c: c.update(self.name, update), Label.UPDATE, exclude)
        else:
            self._schedule()
            self._pending.append((update, exclude))
        for observer in self._observers:
            observer.room_update(self, update, origin)

    def _schedule(self) -> None:
        # One flush in flight at a time, tracked by a flag rather than inferred
        # from empty buffers: a flush that failed half-way must not leave
        # changes buffered with nothing scheduled to send them.
        if not self._scheduled and self._defer is not None:
            self._scheduled = True
            self._defer(self.flush)

    def flush(self) -> int:
        """The pacer's call: updates first, then the presence pointing into
        them. Returns the fan-out's weight for the pacer: the frames a merge
        of several updates took (a flood), 0 when nothing was merged."""
        self._scheduled = False
        weight = self.flush_updates()
        self.flush_awareness()
        return weight

    def flush_updates(self) -> int:
        """Fan out the updates gathered since the last flush, merged into one.

        The merged update also reaches peers that sent a part of it: Yjs
        ignores what it already has, and one encoding for everyone is cheaper
        than one per sender. A lone update still skips its sender.
        """
        pending = self._pending
        if not pending:
            return 0
        self._pending = []
        if len(pending) == 1:
            update, exclude = pending[0]
            self._broadcast(lambda c: c.update(self.name, update), Label.UPDATE, exclude)
            return 0
        update = merge_updates(*(u for u, _ in pending))
        senders = {e for _, e in pending}
        exclude = senders.pop() if len(senders) == 1 else None
        return self._broadcast(lambda c: c.update(self.name, update), Label.UPDATE, exclude)

    # -- peers --------------------------------------------------------------

    def join(self, peer: Peer) -> None:
        """Add a peer and send it our step1 and the current awareness."""
        self.peers[peer.id] = peer
        peer.send(peer.codec.step1(self.name, self.state_vector()), Label.STEP1)
        if len(self.awareness):
            self.query_awareness(peer)

    def leave(self, peer: Peer) -> None:
        """Remove a peer; broadcast the removal of its awareness clients."""
        self.peers.pop(peer.id, None)
        clients = self._peer_clients.pop(peer.id, set())
        for cid in clients:
            self._owners.pop(cid, None)
        removed = self.awareness.remove(clients)
        if removed:
            self._relay_awareness(removed, PeerOrigin(peer.id))

    def sync_step1(self, peer: Peer, state_vector: bytes) -> None:
        peer.send(peer.codec.step2(self.name, self.diff(state_vector)), Label.STEP2)

    def sync_update(self, peer: Peer, update: bytes) -> bool:
        """Apply a peer's step2/update; False when read-only (not applied).
        Past ``max_document_bytes`` raises TooLarge (1009), nothing applied."""
        if peer.readonly or self.oversized:
            return False
        if update != b"\x00\x00":
            self._check_size(update)
        self.apply(update, PeerOrigin(peer.id))
        return True

    # -- awareness ----------------------------------------------------------

    def peer_awareness(self, peer: Peer, update: bytes) -> None:
        """A peer's awareness update. Entries for client ids another
        connection introduced are dropped (a viewer must not move or evict
        someone else's cursor); a peer introducing more ids than its limit
        is closed with 1008."""
        entries = aw.decode_update(update, max_state_bytes=self.limits.max_awareness_state_bytes)
        if peer.id not in self.peers:
            return
        mine = self._peer_clients.get(peer.id)
        accepted: list[aw.Entry] = []
        for e in entries:
            owner = self._owners.get(e.client_id)
            if owner is None:
                if e.client_id in self.awareness or not self.awareness.accepts(e):
                    # another instance's client, nothing to remove, or an echo
                    # of a client already removed (a provider re-broadcasting)
                    continue
                if mine is None:  # made on a peer's first awareness: idle peers cost none
                    mine = self._peer_clients[peer.id] = set()
                if len(mine) >= self.limits.max_awareness_clients:
                    raise PolicyViolation(
                        f"more than {self.limits.max_awareness_clients} awareness clients "
                        "on one connection"
                    )
                mine.add(e.client_id)
                self._owners[e.client_id] = peer.id
            elif owner != peer.id:
                continue
            accepted.append(e)
        self.apply_awareness(accepted, PeerOrigin(peer.id))

    def apply_awareness(self, entries: list[aw.Entry], origin: Origin) -> None:
        if not isinstance(origin, PeerOrigin):
            # From another instance: never about clients connected here.
            entries = [e for e in entries if e.client_id not in self._owners]
        changed = self.awareness.apply(entries)
        if changed:
            self._relay_awareness(changed, origin)

    def query_awareness(self, peer: Peer) -> None:
        update = aw.encode_update(self.awareness.snapshot())
        peer.send(peer.codec.awareness(self.name, update), Label.AWARENESS)

    def _relay_awareness(self, changed: list[aw.Entry], origin: Origin) -> None:
        """Fan out awareness changes, paced like updates: during a flood one
        frame per window carries the latest state of each client."""
        if self._defer is None:
            self._pending_aw.update((e.client_id, (e, origin)) for e in changed)
            self.flush_awareness()
            return
        self._schedule()
        self._pending_aw.update((e.client_id, (e, origin)) for e in changed)

    def flush_awareness(self) -> None:
        pending = self._pending_aw
        if not pending:
            return
        self._pending_aw = {}
        self.flush_updates()  # a cursor must not arrive before the text it points into
        origins = {origin for _, origin in pending.values()}
        only = origins.pop() if len(origins) == 1 else None
        exclude = only.peer_id if isinstance(only, PeerOrigin) else None
        update = aw.encode_update([e for e, _ in pending.values()])
        self._broadcast(lambda c: c.awareness(self.name, update), Label.AWARENESS, exclude)
        # Observers (the backplane) get the changes made here, not those that
        # came from another instance (never published back).
        local = [(e, o) for e, o in pending.values() if isinstance(o, PeerOrigin)]
        if local:
            same = len(local) == len(pending)
            relayed = update if same else aw.encode_update([e for e, _ in local])
            origin = only if same and only is not None else local[0][1]
            for observer in self._observers:
                observer.room_awareness(self, relayed, origin)

    def local_awareness(self) -> bytes:
        """Awareness of the clients connected here (for a remote instance)."""
        mine = set().union(*self._peer_clients.values()) if self._peer_clients else set()
        return aw.encode_update([e for e in self.awareness.snapshot() if e.client_id in mine])

    # -- stateless (Hocuspocus) ----------------------------------------------

    def broadcast_stateless(self, payload: str, origin: Origin) -> None:
        """Send a stateless message to every local peer whose protocol has them
        (the sender included: Hocuspocus broadcasts reach everyone), and to
        the observers (the backplane)."""
        self._broadcast(lambda c: c.stateless(self.name, payload), Label.STATELESS, None)
        for observer in self._observers:
            observer.room_stateless(self, payload, origin)

    # -- fan-out ------------------------------------------------------------

    def _broadcast(
        self, encode: Callable[[Codec], bytes | None], label: Label, exclude: str | None
    ) -> int:
        """Encode once per codec and queue the same bytes for every peer;
        returns how many peers it was sent to."""
        frames: dict[int, bytes | None] = {}
        sent = 0
        # Peer.send never changes self.peers (a closing peer leaves later,
        # from its own task), so the dict is iterated without a copy.
        for pid, peer in self.peers.items():
            if pid == exclude:
                continue
            codec = peer.codec
            key = id(codec)
            if key in frames:
                frame = frames[key]
            else:
                frame = frames[key] = encode(codec)
            if frame is not None:
                peer.send(frame, label)
                sent += 1
        return sent

    def close(self) -> None:
        self.flush()
        self.doc.unobserve(self._sub)
        self.peers.clear()
        self._peer_clients.clear()
        self._owners.clear()
