"""y-websocket frames as byte literals: no event loop, no sockets."""

import pytest

from collab.errors import CloseCode, ProtocolError
from collab.wire import lib0
from collab.wire import ywebsocket as p


def test_var_uint_round_trip() -> None:
    for value, encoded in [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (300, b"\xac\x02"),
        (2**32, b"\x80\x80\x80\x80\x10"),
    ]:
        assert lib0.write_var_uint(value) == encoded
        assert lib0.read_var_uint(encoded, 0) == (value, len(encoded))


def test_decode_sync_messages() -> None:
    assert p.decode_message(b"\x00\x00\x02\x01\x02") == p.SyncStep1(b"\x01\x02")
    assert p.decode_message(b"\x00\x01\x01\x09") == p.SyncStep2(b"\x09")
    assert p.decode_message(b"\x00\x02\x02\x00\x00") == p.SyncUpdate(b"\x00\x00")


def test_decode_other_messages() -> None:
    assert p.decode_message(b"\x01\x03abc") == p.Awareness(b"abc")
    assert p.decode_message(b"\x02\x00\x02no") == p.Auth(b"\x00\x02no")
    assert p.decode_message(b"\x03") == p.QueryAwareness()


def test_encoders_match_decoders() -> None:
    assert p.encode_step1(b"sv") == b"\x00\x00\x02sv"
    assert p.encode_step2(b"u") == b"\x00\x01\x01u"
    assert p.encode_update(b"u") == b"\x00\x02\x01u"
    assert p.encode_awareness(b"aw") == b"\x01\x02aw"
    assert p.encode_query_awareness() == b"\x03"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (b"", "empty frame"),
        (b"\x07", "unknown message type 7"),
        (b"\x00\x05\x00", "unknown sync message type 5"),
        (b"\x00\x00\x80", "truncated varUint"),
        (b"\x00\x00\x05ab", "length runs past the end of the frame"),
        (b"\x01", "truncated varUint"),
        (b"\x00" + b"\xff" * 12, "varUint too long"),
    ],
)
def test_malformed_frames_raise_protocol_error(frame: bytes, message: str) -> None:
    with pytest.raises(ProtocolError) as info:
        p.decode_message(frame)
    assert info.value.code == CloseCode.PROTOCOL_ERROR
    assert info.value.reason == message
