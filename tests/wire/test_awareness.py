import pytest

from collab.errors import CloseCode, InvalidPayload, ProtocolError
from collab.wire import awareness as aw


def test_decode_encode_round_trip() -> None:
    raw = b"\x02" + b"\x05\x01\x02{}" + b"\x07\x03\x04null"
    entries = aw.decode_update(raw)
    assert entries == [aw.Entry(5, 1, "{}"), aw.Entry(7, 3, "null")]
    assert aw.encode_update(entries) == raw


def test_invalid_json_is_1007() -> None:
    with pytest.raises(InvalidPayload) as info:
        aw.decode_update(b"\x01\x05\x01\x03{x}")
    assert info.value.code == CloseCode.INVALID_PAYLOAD


def test_truncated_and_trailing_bytes_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError):
        aw.decode_update(b"\x02\x05\x01\x02{}")
    with pytest.raises(ProtocolError):
        aw.decode_update(b"\x01\x05\x01\x02{}zz")
