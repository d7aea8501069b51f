"""The Room decides who gets what; peers here are plain recorders."""

from __future__ import annotations

import pytest
from pycrdt import Doc, Text

from collab import awareness as aw
from collab import protocol as p
from collab.errors import InvalidPayload
from collab.room import PeerOrigin, RemoteOrigin, Room
from collab.ywebsocket import CODEC


class FakePeer:
    codec = CODEC

    def __init__(self, pid: str, readonly: bool = False) -> None:
        self.id = pid
        self.readonly = readonly
        self.frames: list[bytes] = []

    def send(self, frame: bytes) -> None:
        self.frames.append(frame)


def make_update(text: str) -> bytes:
    d: Doc = Doc()
    d.get("text", type=Text).insert(0, text)
    return d.get_update()


def test_join_sends_step1_and_awareness() -> None:
    room = Room("r")
    a = FakePeer("a")
    room.join(a)
    assert a.frames == [p.encode_step1(room.state_vector())]
    room.peer_awareness(a, aw.encode_update([aw.Entry(9, 1, '{"n":1}')]))
    b = FakePeer("b")
    room.join(b)
    assert b.frames[1] == p.encode_awareness(aw.encode_update([aw.Entry(9, 1, '{"n":1}')]))


def test_update_is_broadcast_once_encoded_to_others_only() -> None:
    room = Room("r")
    a, b, c = FakePeer("a"), FakePeer("b"), FakePeer("c")
    for peer in (a, b, c):
        room.join(peer)
        peer.frames.clear()
    update = make_update("hi")
    assert room.sync_update(a, update)
    assert a.frames == []
    assert b.frames == c.frames == [p.encode_update(update)]
    assert b.frames[0] is c.frames[0]  # the same bytes object: encoded once


def test_readonly_update_is_neither_applied_nor_broadcast() -> None:
    room = Room("r")
    ro, other = FakePeer("ro", readonly=True), FakePeer("o")
    room.join(ro)
    room.join(other)
    other.frames.clear()
    assert room.sync_update(ro, make_update("x")) is False
    assert other.frames == []
    assert str(room.doc.get("text", type=Text)) == ""


def test_rejected_update_leaves_document_intact() -> None:
    room = Room("r")
    a = FakePeer("a")
    room.join(a)
    room.sync_update(a, make_update("keep"))
    before = room.doc.get_update()
    with pytest.raises(InvalidPayload):
        room.sync_update(a, b"garbage-not-an-update")
    assert room.doc.get_update() == before


def test_leave_removes_the_peers_awareness_clients() -> None:
    room = Room("r")
    a, b = FakePeer("a"), FakePeer("b")
    room.join(a)
    room.join(b)
    room.peer_awareness(a, aw.encode_update([aw.Entry(11, 1, "{}")]))
    b.frames.clear()
    room.leave(a)
    assert b.frames == [p.encode_awareness(aw.encode_update([aw.Entry(11, 2, "null")]))]
    assert len(room.awareness) == 0


def test_listeners_see_origins() -> None:
    room = Room("r")
    seen: list[object] = []
    room.update_listeners.append(lambda update, origin: seen.append(origin))
    a = FakePeer("a")
    room.join(a)
    room.sync_update(a, make_update("1"))
    room.apply(make_update("2"), RemoteOrigin("other"))
    assert seen == [PeerOrigin("a"), RemoteOrigin("other")]


def test_step1_is_answered_with_the_diff() -> None:
    room = Room("r")
    a = FakePeer("a")
    room.join(a)
    room.sync_update(a, make_update("abc"))
    b = FakePeer("b")
    room.join(b)
    b.frames.clear()
    room.sync_step1(b, b"\x00")
    fresh: Doc = Doc()
    msg = p.decode_message(b.frames[0])
    assert isinstance(msg, p.SyncStep2)
    fresh.apply_update(msg.update)
    assert str(fresh.get("text", type=Text)) == "abc"


def test_deferred_fan_out_merges_a_burst_into_one_frame() -> None:
    deferred: list[object] = []
    room = Room("r", defer=deferred.append)
    a, b, c = FakePeer("a"), FakePeer("b"), FakePeer("c")
    for peer in (a, b, c):
        room.join(peer)
        peer.frames.clear()
    room.sync_update(a, make_update("one"))
    room.sync_update(b, make_update("two"))
    assert c.frames == [] and len(deferred) == 1  # one flush scheduled for the burst
    room.flush_updates()
    assert len(c.frames) == 1 and a.frames == b.frames == c.frames
    merged: Doc = Doc()
    msg = p.decode_message(c.frames[0])
    assert isinstance(msg, p.SyncUpdate)
    merged.apply_update(msg.update)
    assert sorted(str(merged.get("text", type=Text))) == sorted("onetwo")


def test_awareness_is_never_relayed_ahead_of_pending_text() -> None:
    deferred: list[object] = []
    room = Room("r", defer=deferred.append)
    a, b = FakePeer("a"), FakePeer("b")
    room.join(a)
    room.join(b)
    b.frames.clear()
    room.sync_update(a, make_update("text"))
    room.peer_awareness(a, aw.encode_update([aw.Entry(1, 1, '{"cursor":4}')]))
    kinds = [type(p.decode_message(f)).__name__ for f in b.frames]
    assert kinds == ["SyncUpdate", "Awareness"]
