"""What one room refuses: documents past their size, awareness that is not
its sender's to change, more client ids than a connection may introduce."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.errors import PolicyViolation, TooLarge
from collab.rooms.room import RemoteOrigin, Room, RoomLimits
from collab.wire import awareness as aw
from collab.wire import ywebsocket as p
from tests.support.peers import RecordingPeer


def insert(text: str) -> bytes:
    d: Doc[Any] = Doc()
    d.get("text", type=Text).insert(0, text)
    return d.get_update()


def awareness_of(frames: list[bytes]) -> list[aw.Entry]:
    out: list[aw.Entry] = []
    for f in frames:
        msg = p.decode_message(f)
        if isinstance(msg, p.Awareness):
            out += aw.decode_update(msg.update)
    return out


def test_an_update_past_the_document_limit_is_1009_and_changes_nothing() -> None:
    room = Room("r", limits=RoomLimits(max_document_bytes=4096))
    a, b = RecordingPeer("a"), RecordingPeer("b")
    room.join(a)
    room.join(b)
    room.sync_update(a, insert("x" * 1000))
    before, sent = room.doc.get_update(), len(b.frames)
    with pytest.raises(TooLarge, match="document too large") as info:
        room.sync_update(a, insert("y" * 4000))
    assert info.value.code == 1009
    assert room.doc.get_update() == before and len(b.frames) == sent
    room.sync_update(b, insert("z" * 100))  # others still edit below the limit


def test_the_size_estimate_is_remeasured_so_deletions_free_room() -> None:
    room = Room("r", limits=RoomLimits(max_document_bytes=64 * 1024))
    a = RecordingPeer("a")
    room.join(a)
    text = room.doc.get("text", type=Text)
    for _ in range(6):  # 6 x 10 KB typed and deleted: the document stays small
        room.sync_update(a, insert("q" * 10_000))
        del text[0 : len(text)]
    assert room.size > 60_000  # the estimate only adds
    room.sync_update(a, insert("w" * 10_000))  # accepted after a re-measure
    assert room.measured() < 64 * 1024


def test_a_room_loaded_past_the_limit_is_read_only() -> None:
    room = Room("r", limits=RoomLimits(max_document_bytes=100))
    room.oversized = True
    a = RecordingPeer("a")
    room.join(a)
    assert room.sync_update(a, insert("hi")) is False
    assert str(room.doc.get("text", type=Text)) == ""


def test_awareness_of_another_connection_is_dropped_not_applied() -> None:
    room = Room("r")
    owner, viewer, watcher = (RecordingPeer(n) for n in ("owner", "viewer", "watcher"))
    for peer in (owner, viewer, watcher):
        room.join(peer)
    room.peer_awareness(owner, aw.encode_update([aw.Entry(7, 1, '{"cursor":1}')]))
    # The viewer tries to move, then to evict, the owner's cursor.
    room.peer_awareness(viewer, aw.encode_update([aw.Entry(7, 5, '{"cursor":666}')]))
    room.peer_awareness(viewer, aw.encode_update([aw.Entry(7, 9, "null")]))
    assert room.awareness.snapshot() == [aw.Entry(7, 1, '{"cursor":1}')]
    assert awareness_of(watcher.frames) == [aw.Entry(7, 1, '{"cursor":1}')]
    # Nor may an instance elsewhere speak for a client connected here.
    room.apply_awareness([aw.Entry(7, 10, "null")], RemoteOrigin("other"))
    assert len(room.awareness) == 1


@pytest.mark.parametrize("order", ["set-then-older-remove", "remove-then-set", "set-remove-set"])
def test_every_id_a_peer_introduced_is_removed_when_it_leaves(order: str) -> None:
    room = Room("r")
    a, b = RecordingPeer("a"), RecordingPeer("b")
    room.join(a)
    room.join(b)
    entries = {
        "set-then-older-remove": [aw.Entry(5, 4, "{}"), aw.Entry(5, 2, "null")],
        "remove-then-set": [aw.Entry(5, 1, "null"), aw.Entry(5, 1, "{}")],
        "set-remove-set": [aw.Entry(5, 1, "{}"), aw.Entry(5, 1, "null"), aw.Entry(5, 2, "{}")],
    }[order]
    room.peer_awareness(a, aw.encode_update(entries))  # one frame
    room.leave(a)
    assert len(room.awareness) == 0
    assert room.local_awareness() == aw.encode_update([])


def test_client_ids_per_connection_are_bounded() -> None:
    room = Room("r", limits=RoomLimits(max_awareness_clients=2))
    a = RecordingPeer("a")
    room.join(a)
    room.peer_awareness(a, aw.encode_update([aw.Entry(1, 1, "{}"), aw.Entry(2, 1, "{}")]))
    room.peer_awareness(a, aw.encode_update([aw.Entry(1, 2, "null")]))
    with pytest.raises(PolicyViolation) as info:  # a removed id still counts
        room.peer_awareness(a, aw.encode_update([aw.Entry(3, 1, "{}")]))
    assert info.value.code == 1008
