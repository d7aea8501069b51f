"""RFC 6455 codec (collab.wire.websocket), with byte literals: no socket, no loop."""

from __future__ import annotations

import pytest

from collab.errors import CloseCode, CloseError
from collab.wire import websocket as ws

MASK = b"\x37\xfa\x21\x3d"


def masked(first: int, payload: bytes, mask: bytes = MASK) -> bytes:
    """A client frame: ``first`` is FIN/RSV/opcode, the payload masked."""
    n = len(payload)
    if n < 126:
        length = bytes((0x80 | n,))
    elif n < 1 << 16:
        length = bytes((0x80 | 126,)) + n.to_bytes(2, "big")
    else:
        length = bytes((0x80 | 127,)) + n.to_bytes(8, "big")
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes((first,)) + length + mask + body


def read_all(data: bytes, max_size: int = 1 << 20) -> list[tuple[ws.Opcode, bytes]]:
    reader = ws.FrameReader(max_size)
    reader.feed(data)
    out = []
    while (message := reader.next()) is not None:
        out.append(message)
    return out


def test_rfc_example_masked_hello() -> None:
    # RFC 6455 §5.7: a masked "Hello".
    frame = bytes.fromhex("818537fa213d7f9f4d5158")
    assert read_all(frame) == [(ws.Opcode.TEXT, b"Hello")]


def test_binary_lengths_7_16_and_64_bit() -> None:
    for size in (0, 125, 126, 65535, 65536):
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        assert read_all(masked(0x82, payload)) == [(ws.Opcode.BINARY, payload)]


def test_frames_split_anywhere_and_pipelined() -> None:
    data = masked(0x82, b"\x00\x00\x01\x00") + masked(0x89, b"hi") + masked(0x82, b"x" * 300)
    reader = ws.FrameReader(1 << 20)
    out = []
    for i in range(len(data)):  # one byte at a time
        reader.feed(data[i : i + 1])
        while (message := reader.next()) is not None:
            out.append(message)
    assert out == [
        (ws.Opcode.BINARY, b"\x00\x00\x01\x00"),
        (ws.Opcode.PING, b"hi"),
        (ws.Opcode.BINARY, b"x" * 300),
    ]


def test_fragments_joined_with_a_ping_between() -> None:
    data = masked(0x02, b"ab") + masked(0x89, b"") + masked(0x00, b"cd") + masked(0x80, b"e")
    assert read_all(data) == [(ws.Opcode.PING, b""), (ws.Opcode.BINARY, b"abcde")]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x82\x02ab", CloseCode.PROTOCOL_ERROR),  # not masked
        (masked(0xC2, b"ab"), CloseCode.PROTOCOL_ERROR),  # RSV1 without an extension
        (masked(0x83, b"ab"), CloseCode.PROTOCOL_ERROR),  # opcode 3 is reserved
        (masked(0x80, b"ab"), CloseCode.PROTOCOL_ERROR),  # continuation of nothing
        (masked(0x02, b"a") + masked(0x82, b"b"), CloseCode.PROTOCOL_ERROR),  # new inside one
        (masked(0x09, b"x"), CloseCode.PROTOCOL_ERROR),  # fragmented control frame
        (masked(0x89, b"x" * 126), CloseCode.PROTOCOL_ERROR),  # control frame over 125
        (masked(0x81, b"\xff\xfe"), CloseCode.INVALID_PAYLOAD),  # text that is not UTF-8
        (masked(0x82, b"x" * 101), CloseCode.TOO_BIG),
        (masked(0x02, b"x" * 60) + masked(0x80, b"x" * 60), CloseCode.TOO_BIG),
    ],
)
def test_violations_carry_their_close_code(data: bytes, code: CloseCode) -> None:
    with pytest.raises(CloseError) as info:
        read_all(data, max_size=100)
    assert info.value.code == code


def test_too_big_is_refused_from_the_header_alone() -> None:
    reader = ws.FrameReader(1000)
    reader.feed(b"\x82\xff" + (1 << 40).to_bytes(8, "big"))  # 1 TiB announced, nothing sent
    with pytest.raises(CloseError) as info:
        reader.next()
    assert info.value.code == CloseCode.TOO_BIG


def test_server_frames_are_unmasked() -> None:
    assert ws.encode_frame(ws.Opcode.BINARY, b"ab") == b"\x82\x02ab"
    assert ws.encode_frame(ws.Opcode.PONG, b"") == b"\x8a\x00"
    assert ws.encode_frame(ws.Opcode.BINARY, b"x" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert ws.encode_frame(ws.Opcode.BINARY, b"x" * 70000)[:10] == b"\x82\x7f" + (70000).to_bytes(
        8, "big"
    )


def test_close_frames() -> None:
    assert ws.close_frame(1000) == b"\x88\x02\x03\xe8"
    assert ws.close_frame(1005) == b"\x88\x00"  # no status: an empty close
    long = ws.close_frame(1008, "é" * 100)  # cut to 125 bytes on a character boundary
    assert len(long) <= 127 and long[4:].decode("utf-8")
    assert ws.parse_close(b"") == (1005, "")
    assert ws.parse_close(b"\x0f\xa1bye") == (4001, "bye")
    # one byte, then the codes 1005, 999, 2999 and 5000
    for bad in (b"\x03", b"\x03\xed", b"\x03\xe7", b"\x0b\xb7", b"\x13\x88"):
        with pytest.raises(CloseError) as info:
            ws.parse_close(bad)
        assert info.value.code == CloseCode.PROTOCOL_ERROR
    with pytest.raises(CloseError) as info:
        ws.parse_close(b"\x03\xe8\xff")
    assert info.value.code == CloseCode.INVALID_PAYLOAD


REQUEST = (
    b"GET /room/a?token=t HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
    b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: collab, tok\r\n"
)


def test_handshake_rfc_example() -> None:
    request = ws.parse_request(REQUEST.rstrip(b"\r\n"))
    assert request.target == "/room/a?token=t"
    assert request.header_tokens(b"sec-websocket-protocol") == ["collab", "tok"]
    key = ws.check_upgrade(request)
    response = ws.accept_response(key, "collab")
    # RFC 6455 §1.3's key and accept value.
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert response.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    assert response.endswith(b"Sec-WebSocket-Protocol: collab\r\n\r\n")


@pytest.mark.parametrize(
    ("edit", "status"),
    [
        ((b"GET /", b"POST /"), 405),
        ((b"Upgrade: websocket", b"Upgrade: h2c"), 426),
        ((b"Connection: keep-alive, Upgrade", b"Connection: close"), 426),
        ((b"Version: 13", b"Version: 8"), 426),
        ((b"dGhlIHNhbXBsZSBub25jZQ==", b"short"), 400),
        ((b"HTTP/1.1", b"HTTP/2"), 400),
        ((b"Host: 127.0.0.1", b"Host 127.0.0.1"), 400),
    ],
)
def test_bad_handshakes_get_a_status(edit: tuple[bytes, bytes], status: int) -> None:
    head = REQUEST.replace(*edit).rstrip(b"\r\n")
    with pytest.raises(ws.HandshakeError) as info:
        ws.check_upgrade(ws.parse_request(head))
    assert info.value.status == status


def test_http_response() -> None:
    data = ws.http_response(429, "Too Many Requests", "slow down", (("Retry-After", "2"),))
    assert data.startswith(b"HTTP/1.1 429 Too Many Requests\r\n")
    assert b"Content-Length: 9\r\n" in data and b"Retry-After: 2\r\n" in data
    assert data.endswith(b"\r\n\r\nslow down")


def test_empty_continuation_frames_cost_no_memory() -> None:
    reader = ws.FrameReader(100)
    reader.feed(masked(0x02, b"a") + masked(0x00, b"") * 50_000)
    assert reader.next() is None
    assert reader._fragments == bytearray(b"a")  # one buffer, not 50,001 parts
    reader.feed(masked(0x80, b"b"))
    assert reader.next() == (ws.Opcode.BINARY, b"ab")


def test_a_subprotocol_that_is_not_a_token_is_never_echoed() -> None:
    head = REQUEST.replace(b"collab, tok", b"collab\nX-Injected: 1, ok").rstrip(b"\r\n")
    request = ws.parse_request(head)
    assert request.header_tokens(b"sec-websocket-protocol") == ["ok"]
    response = ws.accept_response(ws.check_upgrade(request), "bad\r\nX-Injected: 1")
    assert b"X-Injected" not in response and b"Sec-WebSocket-Protocol" not in response
