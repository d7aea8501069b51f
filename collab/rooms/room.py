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

from ..errors import InvalidPayload, is_pycrdt_rejection
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


Defer = Callable[[Callable[[], None]], object]


class Room:
    """``defer`` (a :class:`~collab.rooms.pacer.Pacer`, or ``loop.call_soon``)
    batches fan-out: updates integrated before it fires reach peers as one
    merged update (a burst of N edits costs one send per peer, not N).
    Without it, fan-out is immediate.
    """

    def __init__(self, name: str, *, observers: Sequence[RoomObserver] = (),
                 defer: Defer | None = None) -> None:
        self.name = name
        self._observers = tuple(observers)
        self._defer = defer
        self._pending: list[tuple[bytes, str | None]] = []
        self.doc: Doc[Any] = Doc()
        self.awareness = AwarenessTable()
        self.peers: dict[str, Peer] = {}
        # Awareness client ids that arrived on each local peer, removed when it leaves.
        self._peer_clients: dict[str, set[int]] = {}
        self._origin: Origin | None = None
        self._sub = self.doc.observe(self._on_doc_update)

    def __repr__(self) -> str:
        return f"<Room {self.name!r} peers={len(self.peers)}>"

    # -- document -----------------------------------------------------------

    def state_vector(self) -> bytes:
        return self.doc.get_state()

    def diff(self, state_vector: bytes | None = None) -> bytes:
        """The update a holder of ``state_vector`` is missing (all if None)."""
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

    def _on_doc_update(self, event: object) -> None:
        update: bytes = event.update  # type: ignore[attr-defined]
        origin = self._origin if self._origin is not None else StoreOrigin()
        exclude = origin.peer_id if isinstance(origin, PeerOrigin) else None
        if self._defer is None:
            self._broadcast(lambda c: c.update(self.name, update), Label.UPDATE, exclude)
        else:
            if not self._pending:
                self._defer(self.flush_updates)
            self._pending.append((update, exclude))
        for observer in self._observers:
            observer.room_update(self, update, origin)

    def flush_updates(self) -> None:
        """Fan out the updates gathered since the last flush, merged into one.

        The merged update also reaches peers that sent a part of it: Yjs
        ignores what it already has, and one encoding for everyone is cheaper
        than one per sender. A lone update still skips its sender.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = []
        if len(pending) == 1:
            update, exclude = pending[0]
        else:
            update = merge_updates(*(u for u, _ in pending))
            senders = {e for _, e in pending}
            exclude = senders.pop() if len(senders) == 1 else None
        self._broadcast(lambda c: c.update(self.name, update), Label.UPDATE, exclude)

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
        removed = self.awareness.remove(clients)
        if removed:
            self._relay_awareness(aw.encode_update(removed), PeerOrigin(peer.id))

    def sync_step1(self, peer: Peer, state_vector: bytes) -> None:
        peer.send(peer.codec.step2(self.name, self.diff(state_vector)), Label.STEP2)

    def sync_update(self, peer: Peer, update: bytes) -> bool:
        """Apply a peer's step2/update; False when read-only (not applied)."""
        if peer.readonly:
            return False
        self.apply(update, PeerOrigin(peer.id))
        return True

    # -- awareness ----------------------------------------------------------

    def peer_awareness(self, peer: Peer, update: bytes) -> None:
        entries = aw.decode_update(update)
        # The set is made on a peer's first awareness: idle peers cost none.
        clients = (self._peer_clients.setdefault(peer.id, set())
                   if peer.id in self.peers else None)
        if clients is not None:
            for e in entries:
                if e.state == aw.NULL_STATE:
                    clients.discard(e.client_id)
                else:
                    clients.add(e.client_id)
        self.apply_awareness(entries, PeerOrigin(peer.id))

    def apply_awareness(self, entries: list[aw.Entry], origin: Origin) -> None:
        changed = self.awareness.apply(entries)
        if changed:
            self._relay_awareness(aw.encode_update(changed), origin)

    def query_awareness(self, peer: Peer) -> None:
        update = aw.encode_update(self.awareness.snapshot())
        peer.send(peer.codec.awareness(self.name, update), Label.AWARENESS)

    def _relay_awareness(self, update: bytes, origin: Origin) -> None:
        self.flush_updates()  # a cursor must not arrive before the text it points into
        exclude = origin.peer_id if isinstance(origin, PeerOrigin) else None
        self._broadcast(lambda c: c.awareness(self.name, update), Label.AWARENESS, exclude)
        for observer in self._observers:
            observer.room_awareness(self, update, origin)

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

    def _broadcast(self, encode: Callable[[Codec], bytes | None], label: Label,
                   exclude: str | None) -> None:
        """Encode once per codec and queue the same bytes for every peer."""
        frames: dict[int, bytes | None] = {}
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

    def close(self) -> None:
        self.flush_updates()
        self.doc.unobserve(self._sub)
        self.peers.clear()
        self._peer_clients.clear()
