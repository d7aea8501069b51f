"""The Hocuspocus wire format, frame by frame, as byte literals (no I/O)."""

from __future__ import annotations

from typing import Any

import pytest
from pycrdt import Doc, Text

from collab.errors import ProtocolError
from collab.hocuspocus.readonly import adds_nothing
from collab.wire import hocuspocus as hp
from collab.wire import ywebsocket as yp


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        # What a 4.x provider sends on open: Auth Token "" + its version, then step1.
        (b"\x03doc\x02\x00\x00\x054.8.0", hp.AuthToken("doc", "", "4.8.0")),
        (b"\x03doc\x02\x00\x03abc", hp.AuthToken("doc", "abc", None)),  # 3.x: no version
        (b"\x03doc\x00\x00\x01\x00", hp.Sync("doc", yp.SyncStep1(b"\x00"))),
        (b"\x03doc\x04\x00\x01\x00", hp.Sync("doc", yp.SyncStep1(b"\x00"), reply=True)),
        (b"\x03doc\x00\x01\x02\x00\x00", hp.Sync("doc", yp.SyncStep2(b"\x00\x00"))),
        (b"\x03doc\x00\x02\x02\x00\x00", hp.Sync("doc", yp.SyncUpdate(b"\x00\x00"))),
        (b"\x03doc\x01\x03\x01\x02\x03", hp.Awareness("doc", b"\x01\x02\x03")),
        (b"\x03doc\x03", hp.QueryAwareness("doc")),
        (b"\x03doc\x05\x02hi", hp.Stateless("doc", "hi")),
        (b"\x03doc\x06\x02hi", hp.BroadcastStateless("doc", "hi")),
        (b"\x03doc\x07", hp.Close("doc")),
        (b"\x03doc\x07\x02ok", hp.Close("doc", "ok")),
        (b"\x03doc\x08\x01", hp.SyncStatus("doc", True)),
        (b"\x03doc\x08\x00", hp.SyncStatus("doc", False)),
        (b"\x03doc\x02\x01\x03no!", hp.PermissionDenied("doc", "no!")),
        (b"\x03doc\x02\x02\x08readonly", hp.Authenticated("doc", "readonly")),
        (b"\x09", hp.Ping()),
        (b"\x0a", hp.Pong()),
        # A session-aware address: name NUL sessionId.
        (b"\x06a\x00s123\x03", hp.QueryAwareness("a\x00s123")),
        # Multi-byte varUint address length (200 bytes).
        (b"\xc8\x01" + b"x" * 200 + b"\x03", hp.QueryAwareness("x" * 200)),
        # UTF-8 document names.
        (b"\x05" + "été".encode() + b"\x03", hp.QueryAwareness("été")),
    ],
)
def test_decode(frame: bytes, expected: Any) -> None:
    assert hp.decode_frame(frame) == expected


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "empty frame"),
        (b"\x03doc\x0b", "unknown message type 11"),
        (b"\x03doc\x7f", "unknown message type 127"),
        (b"\x03doc\x09", "Ping is one bare byte"),
        (b"\x03do", "past the end"),
        (b"\x03doc", "truncated varUint"),
        (b"\x03doc\x00\x05\x00", "unknown sync message type 5"),
        (b"\x03doc\x02\x07", "unknown auth message type 7"),
        (b"\x03doc\x02\x00\x05ab", "past the end"),
        (b"\x02\xff\xfe\x03", "not UTF-8"),
        (b"\x08", "past the end"),  # one byte, but not Ping/Pong: an address length
    ],
)
def test_decode_errors_are_protocol_errors(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason) as info:
        hp.decode_frame(frame)
    assert info.value.code == 1002


def test_encoders() -> None:
    assert hp.encode_step1("doc", b"\x00") == b"\x03doc\x00\x00\x01\x00"
    assert hp.encode_step2("doc", b"\x00\x00") == b"\x03doc\x00\x01\x02\x00\x00"
    assert hp.encode_update("doc", b"\x00\x00") == b"\x03doc\x00\x02\x02\x00\x00"
    reply = hp.encode_sync("doc", yp.SyncType.STEP1, b"\x00", reply=True)
    assert reply == b"\x03doc\x04\x00\x01\x00"
    assert hp.encode_awareness("doc", b"\x01\x02") == b"\x03doc\x01\x02\x01\x02"
    assert hp.encode_authenticated("doc", hp.Scope.READ_WRITE) == b"\x03doc\x02\x02\x0aread-write"
    assert hp.encode_authenticated("doc", hp.Scope.READ_ONLY) == b"\x03doc\x02\x02\x08readonly"
    assert hp.encode_permission_denied("doc", "no") == b"\x03doc\x02\x01\x02no"
    assert hp.encode_auth_token("doc", "t", "4.8.0") == b"\x03doc\x02\x00\x01t\x054.8.0"
    assert hp.encode_auth_token("doc", "t") == b"\x03doc\x02\x00\x01t"
    assert hp.encode_query_awareness("doc") == b"\x03doc\x03"
    assert hp.encode_stateless("doc", "hi") == b"\x03doc\x05\x02hi"
    assert hp.encode_broadcast_stateless("doc", "hi") == b"\x03doc\x06\x02hi"
    assert hp.encode_close("doc") == b"\x03doc\x07"
    assert hp.encode_close("doc", "bye") == b"\x03doc\x07\x03bye"
    assert hp.encode_sync_status("doc", True) == b"\x03doc\x08\x01"
    assert hp.encode_sync_status("doc", False) == b"\x03doc\x08\x00"
    assert (hp.PING, hp.PONG) == (b"\x09", b"\x0a")


def test_round_trip_of_every_encoder() -> None:
    frames = [
        hp.encode_step1("a/b", b"\x01\x02\x03"),
        hp.encode_update("a/b", b"\x00\x00"),
        hp.encode_awareness("a/b", b"\x00"),
        hp.encode_auth_token("a/b", "tok", "4"),
        hp.encode_stateless("a/b", "ü"),
        hp.encode_close("a/b", "r"),
        hp.encode_sync_status("a/b", False),
        hp.encode_permission_denied("a/b", "x"),
    ]
    for frame in frames:
        msg = hp.decode_frame(frame)
        assert getattr(msg, "address", None) == "a/b"


def test_split_address() -> None:
    assert hp.split_address("doc") == ("doc", None)
    assert hp.split_address("doc\x00abc") == ("doc", "abc")
    assert hp.split_address("doc\x00") == ("doc", "")


# -- the read-only step2 rule ---------------------------------------------------


def _doc(text: str, delete: tuple[int, int] | None = None) -> Doc[Any]:
    d: Doc[Any] = Doc()
    t = d.get("text", type=Text)
    t.insert(0, text)
    if delete:
        del t[delete[0] : delete[1]]
    return d


def _state(d: Doc[Any]) -> tuple[bytes, bytes]:
    return d.get_state(), d.get_update(d.get_state())


def test_adds_nothing_for_what_the_document_has() -> None:
    server = _doc("hello world", delete=(0, 3))
    client: Doc[Any] = Doc()
    client.apply_update(server.get_update())
    sv, deletions = _state(server)
    # What a read-only provider answers our step1 with: its diff, which here
    # holds nothing but its (known) delete set.
    assert adds_nothing(client.get_update(sv), sv, deletions)
    assert adds_nothing(b"\x00\x00", sv, deletions)
    assert adds_nothing(server.get_update(), sv, deletions)


def test_adds_something_for_new_structs_or_new_deletions() -> None:
    server = _doc("hello world")
    sv, deletions = _state(server)
    client: Doc[Any] = Doc()
    client.apply_update(server.get_update())
    before = client.get_state()
    client.get("text", type=Text).insert(0, "x")
    assert not adds_nothing(client.get_update(sv), sv, deletions)
    # A deletion of something the server has, without new structs.
    other: Doc[Any] = Doc()
    other.apply_update(server.get_update())
    del other.get("text", type=Text)[0:2]
    only_delete = other.get_update(before)
    assert not adds_nothing(only_delete, sv, deletions)
    server.apply_update(only_delete)
    assert adds_nothing(only_delete, *_state(server))


def test_adds_nothing_rejects_garbage() -> None:
    from collab.errors import InvalidPayload

    with pytest.raises(InvalidPayload):
        adds_nothing(b"garbage-not-an-update", b"\x00", b"\x00\x00")


@pytest.mark.parametrize(
    ("frame", "kind"),
    [
        (hp.encode_step1("doc", b"\x00"), "SyncStep1"),
        (hp.encode_step2("doc", b"\x00\x00"), "SyncStep2"),
        (hp.encode_update("doc", b"\x00\x00"), "SyncUpdate"),
        (hp.encode_sync("doc", yp.SyncType.STEP1, b"\x00", reply=True), "SyncStep1"),
        (hp.encode_awareness("doc", b"\x00"), "Awareness"),
        (hp.encode_authenticated("doc", hp.Scope.READ_WRITE), "Authenticated"),
        (hp.encode_permission_denied("doc", "x"), "PermissionDenied"),
        (hp.encode_auth_token("doc", "x"), "AuthToken"),
        (hp.encode_query_awareness("doc"), "QueryAwareness"),
        (hp.encode_stateless("doc", "x"), "Stateless"),
        (hp.encode_close("doc"), "Close"),
        (hp.encode_sync_status("doc", True), "SyncStatus"),
        (hp.PING, "Ping"),
        (hp.PONG, "Pong"),
        (b"", "unknown"),
        (b"\x03do", "unknown"),
        (b"\x03doc\x63", "unknown"),
        (b"\x03doc\x00", "unknown"),
    ],
)
def test_frame_kind_matches_message_kind(frame: bytes, kind: str) -> None:
    assert hp.frame_kind(frame) == kind
    if kind != "unknown":
        assert hp.message_kind(hp.decode_frame(frame)) == kind
