"""The cross-instance message format, checked against byte literals."""

from __future__ import annotations

import pytest

from collab.errors import BackplaneError
from collab.wire import backplane as rp


@pytest.mark.parametrize(
    ("msg", "wire"),
    [
        (rp.Update("A", b"\x01\x02", "c-1"), b"\x01\x01A\x03c-1\x01\x02"),
        (rp.Update("A", b"\x00\x00"), b"\x01\x01A\x00\x00\x00"),
        (rp.Awareness("i1", b"\x00"), b"\x02\x02i1\x00\x00"),
        (rp.Stateless("A", "h\u00e9", "c"), b"\x03\x01A\x01ch\xc3\xa9"),
        (rp.SyncRequest("A", b"\x01\x05\x02"), b"\x04\x01A\x00\x01\x05\x02"),
        (rp.SyncReply("B", "A", b"\x00\x00", b"\x00"), b"\x05\x01B\x00\x01A\x02\x00\x00\x00"),
        # Control channel: the connection id is the target socket's.
        (rp.ConnSend("A", "r1", "doc", "hi", "c-1"), b"\x06\x01A\x03c-1\x02r1\x03dochi"),
        (rp.ConnSend("A", "r1", "", "", "c-1"), b"\x06\x01A\x03c-1\x02r1\x00"),
        (rp.ConnClose("A", "r2", 4205, "bye", "c-2"), b"\x07\x01A\x03c-2\x02r2\xed\x20bye"),
        (rp.RoomClose("A", "doc", 4404, "gone", True), b"\x08\x01A\x00\x03doc\xb4\x22\x01gone"),
        (rp.RoomClose("A", "d", 4205, ""), b"\x08\x01A\x00\x01d\xed\x20\x00"),
        (
            rp.Ack("B", "A", "r1", rp.AckStatus.NO_STATELESS, 2, "c-1"),
            b"\x09\x01B\x03c-1\x01A\x02r1\x01\x02",
        ),
    ],
)
def test_encode_and_decode(msg: rp.Message, wire: bytes) -> None:
    assert rp.encode(msg) == wire
    assert rp.decode(wire) == msg


def test_long_instance_id_uses_a_multi_byte_length() -> None:
    sender = "x" * 200
    wire = rp.encode(rp.SyncRequest(sender, b"\x00"))
    assert wire[:3] == b"\x04\xc8\x01"  # varUint 200
    assert rp.decode(wire) == rp.SyncRequest(sender, b"\x00")


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "empty"),
        (b"\x63\x01A\x00", "unknown backplane message kind 99"),
        (b"\x01\x05AB", "malformed UPDATE"),  # sender runs past the end
        (b"\x01\x01A", "malformed UPDATE"),  # no connection id
        (b"\x05\x01B\x00\x01A\x09\x00", "malformed SYNC_REPLY"),  # update runs past the end
        (b"\x03\x01A\x00\xff", "not UTF-8"),
        (b"\x07\x01A\x01c\x01r", "malformed CONN_CLOSE"),  # no close code
        (b"\x08\x01A\x00\x01d\xed\x20", "malformed ROOM_CLOSE"),  # no flags
        (b"\x09\x01B\x00\x01A\x01r\x07\x00", "status 7"),  # unknown ack status
        (b"\x06\x01A\x01c\x01r\x00\xfe", "not UTF-8"),
    ],
)
def test_malformed_messages_raise_backplane_error(wire: bytes, reason: str) -> None:
    with pytest.raises(BackplaneError, match=reason):
        rp.decode(wire)
