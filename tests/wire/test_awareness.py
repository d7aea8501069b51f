import pytest

from collab.errors import CloseCode, InvalidPayload, ProtocolError, TooLarge
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


@pytest.mark.parametrize(
    "state",
    [
        "NaN",
        '{"x": Infinity}',
        "[-Infinity]",
        '{"x": 1e999}',  # not finite: not JSON for a browser
        "[" * 33 + "]" * 33,  # deeper than MAX_DEPTH
        '{"a":' * 100_000 + "1" + "}" * 100_000,  # would be a RecursionError when parsed
    ],
)
def test_states_a_browser_cannot_take_are_1007(state: str) -> None:
    with pytest.raises(InvalidPayload) as info:
        aw.decode_update(aw.encode_update([aw.Entry(1, 1, state)]))
    assert info.value.code == CloseCode.INVALID_PAYLOAD


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    state = '{"text": "' + "[{" * 100 + '\\"[["}'
    assert aw.decode_update(aw.encode_update([aw.Entry(1, 1, state)]))[0].state == state
    deep_ok = "[" * 32 + "]" * 32
    assert aw.decode_update(aw.encode_update([aw.Entry(1, 1, deep_ok)]))


@pytest.mark.parametrize("client_id, clock", [(2**53, 0), (0, 2**53), (2**62, 1)])
def test_ids_and_clocks_must_be_safe_integers(client_id: int, clock: int) -> None:
    with pytest.raises(InvalidPayload, match="2\\*\\*53"):
        aw.decode_update(aw.encode_update([aw.Entry(client_id, clock, "{}")]))
    assert aw.decode_update(aw.encode_update([aw.Entry(2**53 - 1, 2**53 - 1, "{}")]))


def test_a_state_past_the_byte_limit_is_1009() -> None:
    raw = aw.encode_update([aw.Entry(1, 1, '"' + "x" * 100 + '"')])
    with pytest.raises(TooLarge) as info:
        aw.decode_update(raw, max_state_bytes=101)
    assert info.value.code == CloseCode.TOO_BIG
    assert aw.decode_update(raw, max_state_bytes=102)
