"""The Room decides who gets what; peers here are plain recorders."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pycrdt import Doc, Text

from collab.errors import InvalidPayload
from collab.rooms.room import Origin, PeerOrigin, RemoteOrigin, Room
from collab.wire import awareness as aw
from collab.wire import ywebsocket as p
from tests.support.peers import RecordingPeer


class Recorder:
    """A room observer that records what it is told."""

    def __init__(self) -> None:
        self.updates: list[tuple[bytes, object]] = []
        self.awareness: list[tuple[bytes, object]] = []
        self.stateless: list[tuple[str, object]] = []

    def room_update(self, room: Room, update: bytes, origin: Origin) -> None:
        self.updates.append((update, origin))

    def room_awareness(self, room: Room, update: bytes, origin: Origin) -> None:
        self.awareness.append((update, origin))

    def room_stateless(self, room: Room, payload: str, origin: Origin) -> None:
        self.stateless.append((payload, origin))


def make_update(text: str) -> bytes:
    d: Doc = Doc()
    d.get("text", type=Text).insert(0, text)
    return d.get_update()


def test_join_sends_step1_and_awareness() -> None:
    room = Room("r")
    a = RecordingPeer("a")
    room.join(a)
    assert a.frames == [p.encode_step1(room.state_vector())]
    room.peer_awareness(a, aw.encode_update([aw.Entry(9, 1, '{"n":1}')]))
    b = RecordingPeer("b")
    room.join(b)
    assert b.frames[1] == p.encode_awareness(aw.encode_update([aw.Entry(9, 1, '{"n":1}')]))


def test_update_is_broadcast_once_encoded_to_others_only() -> None:
    room = Room("r")
    a, b, c = RecordingPeer("a"), RecordingPeer("b"), RecordingPeer("c")
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
    ro, other = RecordingPeer("ro", readonly=True), RecordingPeer("o")
    room.join(ro)
    room.join(other)
    other.frames.clear()
    assert room.sync_update(ro, make_update("x")) is False
    assert other.frames == []
    assert str(room.doc.get("text", type=Text)) == ""


def test_rejected_update_leaves_document_intact() -> None:
    room = Room("r")
    a = RecordingPeer("a")
    room.join(a)
    room.sync_update(a, make_update("keep"))
    before = room.doc.get_update()
    with pytest.raises(InvalidPayload):
        room.sync_update(a, b"garbage-not-an-update")
    assert room.doc.get_update() == before


def test_leave_removes_the_peers_awareness_clients() -> None:
    room = Room("r")
    a, b = RecordingPeer("a"), RecordingPeer("b")
    room.join(a)
    room.join(b)
    room.peer_awareness(a, aw.encode_update([aw.Entry(11, 1, "{}")]))
    b.frames.clear()
    room.leave(a)
    assert b.frames == [p.encode_awareness(aw.encode_update([aw.Entry(11, 2, "null")]))]
    assert len(room.awareness) == 0


def test_an_echo_of_a_removed_client_cannot_bring_it_back() -> None:
    """y-websocket providers re-broadcast every state they hear of. Their echo
    of a client that has since left arrives after its removal was queued: it
    must neither replace the removal nor leave an orphan behind (the flake
    of tests/limits/test_awareness.py under load)."""
    deferred: list[Callable[[], object]] = []
    room = Room("r", defer=deferred.append)
    a, b, c = RecordingPeer("a"), RecordingPeer("b"), RecordingPeer("c")
    for peer in (a, b, c):
        room.join(peer)
    state = aw.Entry(424242, 5, '{"name":"mallory"}')
    room.peer_awareness(a, aw.encode_update([state]))
    deferred.pop()()
    c.frames.clear()
    room.leave(a)  # the removal (clock 6) is queued
    room.peer_awareness(b, aw.encode_update([state]))  # b's provider echoes clock 5
    deferred.pop()()
    assert c.frames == [p.encode_awareness(aw.encode_update([aw.Entry(424242, 6, "null")]))]
    assert 424242 not in room.awareness
    c.frames.clear()
    room.leave(b)  # b did not adopt it: nothing more to remove
    assert c.frames == [] and deferred == []


def test_a_herd_of_fresh_clients_costs_one_encoding_until_the_next_edit() -> None:
    room = Room("r")
    a, b, c = RecordingPeer("a"), RecordingPeer("b"), RecordingPeer("c")
    for peer in (a, b, c):
        room.join(peer)
    room.sync_update(a, make_update("hello"))
    first, second = room.diff(b"\x00"), room.diff()
    assert first is second  # encoded once for every empty state vector
    room.sync_update(a, make_update("more"))
    third = room.diff(b"\x00")
    assert third is not first
    d: Doc = Doc()
    d.apply_update(third)
    assert "more" in str(d.get("text", type=Text))


def test_observers_see_origins() -> None:
    recorder = Recorder()
    room = Room("r", observers=[recorder])
    a = RecordingPeer("a")
    room.join(a)
    room.sync_update(a, make_update("1"))
    room.apply(make_update("2"), RemoteOrigin("other"))
    seen = [origin for _update, origin in recorder.updates]
    assert seen == [PeerOrigin("a"), RemoteOrigin("other")]


def test_frames_are_labelled_where_they_are_encoded() -> None:
    room = Room("r")
    a, b = RecordingPeer("a"), RecordingPeer("b")
    room.join(a)
    room.join(b)
    room.sync_update(a, make_update("1"))
    room.peer_awareness(a, aw.encode_update([aw.Entry(1, 1, "{}")]))
    room.sync_step1(b, b"\x00")
    assert b.labels == ["SyncStep1", "SyncUpdate", "Awareness", "SyncStep2"]
    assert [p.frame_kind(f) for f in b.frames] == b.labels


def test_step1_is_answered_with_the_diff() -> None:
    room = Room("r")
    a = RecordingPeer("a")
    room.join(a)
    room.sync_update(a, make_update("abc"))
    b = RecordingPeer("b")
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
    a, b, c = RecordingPeer("a"), RecordingPeer("b"), RecordingPeer("c")
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


def test_awareness_is_paced_and_never_relayed_ahead_of_pending_text() -> None:
    deferred: list[Callable[[], None]] = []
    room = Room("r", defer=deferred.append)
    a, b = RecordingPeer("a"), RecordingPeer("b")
    room.join(a)
    room.join(b)
    b.frames.clear()
    room.sync_update(a, make_update("text"))
    for clock in range(1, 50):  # a cursor flood: one frame, the latest state
        room.peer_awareness(a, aw.encode_update([aw.Entry(1, clock, f'{{"cursor":{clock}}}')]))
    assert b.frames == [] and len(deferred) == 1
    deferred[0]()
    kinds = [type(p.decode_message(f)).__name__ for f in b.frames]
    assert kinds == ["SyncUpdate", "Awareness"]
    last = p.decode_message(b.frames[1])
    assert isinstance(last, p.Awareness)
    assert aw.decode_update(last.update) == [aw.Entry(1, 49, '{"cursor":49}')]


def test_a_flush_that_fails_half_way_leaves_nothing_stuck() -> None:
    """Fan-out is scheduled by a flag, not inferred from empty buffers: after a
    flush that raised (here: a peer's send), later changes still go out."""
    deferred: list[object] = []
    room = Room("r", defer=deferred.append)
    a, b = RecordingPeer("a"), RecordingPeer("b")
    room.join(a)
    room.join(b)
    broken = {"on": True}
    real_send = b.send

    def send(frame: bytes, label: str) -> None:
        if broken["on"] and label == "SyncUpdate":
            raise RuntimeError("transport gone")
        real_send(frame, label)

    b.send = send  # type: ignore[method-assign]
    room.sync_update(a, make_update("x"))
    room.peer_awareness(a, aw.encode_update([aw.Entry(1, 1, '{"n": 1}')]))
    flush = deferred.pop()
    with pytest.raises(RuntimeError):
        flush()  # type: ignore[operator]
    broken["on"] = False
    b.frames.clear()
    room.peer_awareness(a, aw.encode_update([aw.Entry(1, 2, '{"n": 2}')]))
    assert deferred, "nothing scheduled: the change would never be sent"
    deferred.pop()()  # type: ignore[operator]
    assert b.labels[-1] == "Awareness"
    assert aw.decode_update(p.decode_message(b.frames[-1]).update)[-1].clock == 2  # type: ignore[union-attr]
