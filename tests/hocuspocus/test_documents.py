"""The document table of one Hocuspocus socket, as a pure state machine:
byte literals in (decoded), actions out. No event loop, no socket, no room."""

from __future__ import annotations

import pytest

from collab.errors import PolicyViolation
from collab.hocuspocus import documents as dt
from collab.hocuspocus.document import DocState, Document
from collab.rooms.room import Room
from collab.wire import hocuspocus as hp

TOKEN = b"\x03doc\x02\x00\x03abc"  # Auth Token "abc" (a 3.x provider: no version)
TOKEN_V4 = b"\x03doc\x02\x00\x00\x054.8.0"  # Auth Token "" + version 4.8.0
STEP1 = b"\x03doc\x00\x00\x01\x00"  # Sync step1, empty state vector
AWARENESS = b"\x03doc\x01\x03\x01\x02\x03"
CLOSE = b"\x03doc\x07"


def table(*, frames: int = 4, size: int = 64) -> dt.DocumentTable:
    return dt.DocumentTable(
        "c-1",
        lambda frame, label: None,
        max_room_name=64,
        reserved=frozenset({"metrics"}),
        queue_frames=frames,
        queue_bytes=size,
    )


def feed(t: dt.DocumentTable, frame: bytes) -> list[dt.Action]:
    return t.receive(hp.decode_frame(frame), len(frame))


def kinds(actions: list[dt.Action]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_frames_before_the_token_queue_then_replay_in_order() -> None:
    t = table()
    assert feed(t, STEP1) == []
    assert feed(t, AWARENESS) == []
    assert t.queued_frames == 2 and t.queued_bytes == len(STEP1) + len(AWARENESS)
    (auth,) = feed(t, TOKEN)
    assert isinstance(auth, dt.Authenticate) and (auth.token, auth.version) == ("abc", None)
    doc = auth.doc
    assert doc.state is DocState.OPENING and doc.id == "c-1" and doc.name == "doc"
    assert feed(t, STEP1) == []  # still queued while authenticating
    sent, join = t.allowed(doc, readonly=True)
    assert sent == dt.Send(b"\x03doc\x02\x02\x08readonly", "Authenticated")
    assert join == dt.Join(doc)
    replay = t.joined(doc, Room("doc"))
    assert [a.msg for a in replay if isinstance(a, dt.Dispatch)] == [
        hp.decode_frame(STEP1),
        hp.decode_frame(AWARENESS),
        hp.decode_frame(STEP1),
    ]
    assert doc.state is DocState.OPEN and doc.readonly and doc.join_step1
    assert t.queued_frames == t.queued_bytes == 0
    assert kinds(feed(t, AWARENESS)) == ["Dispatch"]  # open: straight to the room


def test_a_v4_token_carries_its_version() -> None:
    (auth,) = feed(table(), TOKEN_V4)
    assert isinstance(auth, dt.Authenticate) and (auth.token, auth.version) == ("", "4.8.0")


def test_denied_drops_the_queue_and_later_frames_then_a_new_token_retries() -> None:
    t = table()
    feed(t, STEP1)
    (auth,) = feed(t, TOKEN)
    assert t.denied(auth.doc, "nope") == [dt.Send(b"\x03doc\x02\x01\x04nope", "PermissionDenied")]
    assert auth.doc.state is DocState.DENIED and t.queued_frames == 0
    assert feed(t, AWARENESS) == [] and t.queued_frames == 0  # dropped, not queued
    (again,) = feed(t, TOKEN)
    assert again.doc is auth.doc and auth.doc.state is DocState.OPENING


def test_an_empty_denial_reason_gets_the_hocuspocus_default() -> None:
    t = table()
    (auth,) = feed(t, TOKEN)
    (sent,) = t.denied(auth.doc, "")
    assert isinstance(sent, dt.Send) and sent.frame == hp.encode_permission_denied(
        "doc", "permission-denied"
    )


def test_close_while_opening_cancels_and_late_results_do_nothing() -> None:
    t = table()
    (auth,) = feed(t, TOKEN)
    assert feed(t, CLOSE) == [dt.CancelAuth(auth.doc)]
    assert t.docs == {} and auth.doc.state is DocState.CLOSED
    assert t.allowed(auth.doc, readonly=False) == []
    assert t.denied(auth.doc, "late") == []


def test_closed_while_joining_leaves_again() -> None:
    t = table()
    (auth,) = feed(t, TOKEN)
    t.allowed(auth.doc, readonly=False)
    feed(t, CLOSE)
    assert t.joined(auth.doc, Room("doc")) == [dt.Leave(auth.doc)]


def test_close_of_an_open_document_leaves_and_confirms() -> None:
    t = table()
    (auth,) = feed(t, TOKEN)
    t.allowed(auth.doc, readonly=False)
    t.joined(auth.doc, Room("doc"))
    assert feed(t, CLOSE) == [
        dt.Leave(auth.doc),
        dt.Send(b"\x03doc\x07\x12provider_initiated", "Close"),
    ]
    assert auth.doc.state is DocState.CLOSED and "doc" not in t.docs
    assert feed(t, CLOSE) == []  # nothing open under that address any more


def test_the_pre_auth_queue_is_bounded_in_frames_and_bytes() -> None:
    t = table(frames=2)
    feed(t, STEP1)
    feed(t, STEP1)
    with pytest.raises(PolicyViolation, match="too much sent before authentication"):
        feed(t, STEP1)
    t = table(size=len(STEP1) + 1)
    feed(t, STEP1)
    with pytest.raises(PolicyViolation, match=f"{len(STEP1) + 1} bytes"):
        feed(t, STEP1)


def test_documents_not_open_are_bounded_per_socket() -> None:
    t = table(frames=2)
    feed(t, b"\x01a\x03")
    feed(t, b"\x01b\x03")
    with pytest.raises(PolicyViolation, match="more than 2 documents"):
        feed(t, b"\x01c\x03")


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x07metrics\x03", "reserved"),
        (b"\x04a/..\x03", "not allowed"),
        (b"\x05a\x00s!3\x03", "session id"),
    ],
)
def test_bad_addresses_are_policy_violations(frame: bytes, reason: str) -> None:
    with pytest.raises(PolicyViolation, match=reason):
        feed(table(), frame)


def test_a_session_aware_address_is_its_own_peer() -> None:
    t = table()
    (auth,) = feed(t, b"\x06doc\x00s1\x02\x00\x00")
    doc: Document = auth.doc
    assert (doc.name, doc.id, doc.connection_id) == ("doc", "c-1/s1", "c-1")
    assert doc.codec.update("doc", b"\x00\x00") == hp.encode_update("doc\x00s1", b"\x00\x00")


def test_close_all_cancels_what_opens_and_leaves_what_is_open() -> None:
    t = table()
    (opening,) = feed(t, TOKEN)
    (auth,) = feed(t, b"\x05other\x02\x00\x00")
    t.allowed(auth.doc, readonly=False)
    t.joined(auth.doc, Room("other"))
    assert t.close_all() == [dt.CancelAuth(opening.doc), dt.Leave(auth.doc)]
    assert t.docs == {} and opening.doc.state is auth.doc.state is DocState.CLOSED


def test_documents_per_socket_are_bounded_open_or_not() -> None:
    t = dt.DocumentTable(
        "c-1",
        lambda frame, label: None,
        max_room_name=64,
        reserved=frozenset(),
        queue_frames=8,
        queue_bytes=1024,
        max_documents=2,
    )
    for name in (b"\x02d1", b"\x02d2"):
        (auth,) = feed(t, name + b"\x02\x00\x00")  # Auth Token ""
        t.allowed(auth.doc, readonly=False)
        t.joined(auth.doc, Room(auth.doc.name))
    assert all(d.state is DocState.OPEN for d in t.docs.values())
    with pytest.raises(PolicyViolation, match="more than 2 documents on one socket") as info:
        feed(t, b"\x02d3\x02\x00\x00")
    assert info.value.code == 1008
    assert feed(t, b"\x02d1\x07") != []  # closing one makes room for another
    assert kinds(feed(t, b"\x02d3\x02\x00\x00")) == ["Authenticate"]


def test_the_pre_auth_budget_is_shared_by_every_socket_and_given_back() -> None:
    from collab.errors import Overloaded

    budget = dt.PreAuthBudget(2 * len(STEP1))
    one, two = (
        dt.DocumentTable(
            f"c-{i}",
            lambda frame, label: None,
            max_room_name=64,
            reserved=frozenset(),
            queue_frames=8,
            queue_bytes=1024,
            budget=budget,
        )
        for i in (1, 2)
    )
    feed(one, STEP1)
    feed(two, STEP1)
    with pytest.raises(Overloaded):
        feed(two, STEP1)
    (auth,) = feed(one, TOKEN)
    t = one
    t.allowed(auth.doc, readonly=False)
    t.joined(auth.doc, Room("doc"))  # replayed: its bytes are given back
    assert budget.used == len(STEP1)
    two.close_all()
    assert budget.used == 0
