"""RFC 6455 for the server side, as pure functions over bytes.

The handshake (request head in, response bytes out) and the framing (an
incremental :class:`FrameReader`: bytes in, whole messages and control frames
out) used by ``collab serve``'s own socket protocol
(:mod:`collab.transport.fast`). No I/O, no event loop: tested with byte
literals (tests/wire/test_websocket.py).

A violation raises :class:`~collab.errors.CloseError` carrying the close code
the RFC asks for: 1002 for a malformed frame, 1007 for text or a close reason
that is not UTF-8, 1009 for a message past the size limit.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from dataclasses import dataclass
from enum import IntEnum

from ..errors import CloseCode, CloseError, InvalidPayload, ProtocolError

try:  # websockets' C helper: unmasking in pure Python costs ~100x more
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - websockets without its extension
    from websockets.utils import apply_mask

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A request head past this is refused with 431 (uvicorn's parser bounds it too).
MAX_HEAD_BYTES = 64 * 1024
_CLOSE_CODES_RESERVED = {1004, 1005, 1006, 1015}


class Opcode(IntEnum):
    CONT = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


_OPCODES = {op.value: op for op in Opcode}


class HandshakeError(Exception):
    """The upgrade request is refused with ``status`` (and ``headers``)."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(reason)
        self.status, self.reason, self.headers = status, reason, headers


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str  # path and query, as sent
    headers: list[tuple[bytes, bytes]]  # names lower-cased, as in an ASGI scope

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def header_tokens(self, name: bytes) -> list[str]:
        """Every comma-separated token of every ``name`` header, stripped;
        anything that is not an RFC 7230 token is dropped (a subprotocol is
        echoed in the response: it must not carry a line break)."""
        return [
            token
            for key, value in self.headers
            if key == name
            for token in (t.strip() for t in value.decode("latin-1").split(","))
            if _TOKEN.fullmatch(token)
        ]


def parse_request(head: bytes) -> Request:
    """The request line and headers of ``head`` (up to, without, the blank line)."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        raise HandshakeError(400, "malformed request line")
    headers: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise HandshakeError(400, "malformed header line")
        headers.append((name.lower(), value.strip()))
    return Request(parts[0].decode("latin-1"), parts[1].decode("latin-1"), headers)


def check_upgrade(request: Request) -> bytes:
    """The ``Sec-WebSocket-Key`` of a valid upgrade request (RFC 6455 §4.2.1)."""
    if request.method != "GET":
        raise HandshakeError(405, "a WebSocket handshake is a GET")
    if "websocket" not in (t.lower() for t in request.header_tokens(b"upgrade")):
        raise HandshakeError(426, "missing Upgrade: websocket", (("Upgrade", "websocket"),))
    if "upgrade" not in (t.lower() for t in request.header_tokens(b"connection")):
        raise HandshakeError(426, "missing Connection: Upgrade", (("Upgrade", "websocket"),))
    if request.header(b"sec-websocket-version") != b"13":
        raise HandshakeError(
            426, "unsupported Sec-WebSocket-Version", (("Sec-WebSocket-Version", "13"),)
        )
    key = request.header(b"sec-websocket-key") or b""
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            raise ValueError
    except (binascii.Error, ValueError):
        raise HandshakeError(400, "invalid Sec-WebSocket-Key") from None
    return key


def accept_response(key: bytes, subprotocol: str | None, extra: bytes = b"") -> bytes:
    """The 101 answer to an upgrade whose key is ``key``; ``extra`` is
    pre-encoded header lines (``name: value\\r\\n`` each)."""
    accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
    head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    head += b"Sec-WebSocket-Accept: " + accept + b"\r\n"
    if subprotocol and _TOKEN.fullmatch(subprotocol):
        head += b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1") + b"\r\n"
    return head + extra + b"\r\n"


def http_response(
    status: int, phrase: str, body: str, headers: tuple[tuple[str, str], ...] = ()
) -> bytes:
    """A plain-text HTTP/1.1 response that ends the connection."""
    data = body.encode("utf-8")
    lines = [f"HTTP/1.1 {status} {phrase}", "Content-Type: text/plain; charset=utf-8"]
    lines += [f"Content-Length: {len(data)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + data


def encode_frame(opcode: Opcode, payload: bytes = b"") -> bytes:
    """An unmasked, final frame (a server's frames are never masked)."""
    n = len(payload)
    if n < 126:
        header = bytes((0x80 | opcode, n))
    elif n < 1 << 16:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def close_frame(code: int, reason: str = "") -> bytes:
    """A close frame; 1005 (no status) is sent as an empty one, as the RFC says."""
    if code == CloseCode.NO_STATUS:
        return encode_frame(Opcode.CLOSE)
    data = reason.encode("utf-8")[:123]
    while True:  # cut on a character boundary
        try:
            data.decode("utf-8")
            break
        except UnicodeDecodeError:
            data = data[:-1]
    return encode_frame(Opcode.CLOSE, code.to_bytes(2, "big") + data)


def parse_close(payload: bytes) -> tuple[int, str]:
    """The code and reason of a received close frame (1005 when empty)."""
    if not payload:
        return CloseCode.NO_STATUS, ""
    if len(payload) == 1:
        raise ProtocolError("close frame of one byte")
    code = int.from_bytes(payload[:2], "big")
    if not (1000 <= code < 5000) or code in _CLOSE_CODES_RESERVED or 1016 <= code < 3000:
        raise ProtocolError(f"invalid close code {code}")
    try:
        return code, payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("close reason is not UTF-8") from None


class FrameReader:
    """Bytes in, messages out: ``feed(data)`` then ``next()`` until None.

    ``next()`` returns ``(opcode, payload)``: a whole data message (TEXT or
    BINARY, fragments joined) or a control frame (CLOSE, PING, PONG), which
    may arrive between the fragments of a message. Client frames must be
    masked; a message past ``max_size`` is refused before it is buffered whole.
    """

    __slots__ = ("_buf", "_frag_opcode", "_fragments", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buf = bytearray()
        # One buffer, not a list of parts: a flood of empty continuation
        # frames must not grow memory (the size check alone would not see it).
        self._fragments: bytearray | None = None
        self._frag_opcode = Opcode.BINARY

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next(self) -> tuple[Opcode, bytes] | None:
        while True:
            frame = self._next_frame()
            if frame is None:
                return None
            fin, opcode, payload = frame
            if opcode >= Opcode.CLOSE:
                return opcode, payload
            if opcode is Opcode.CONT:
                if self._fragments is None:
                    raise ProtocolError("continuation frame without a message")
                self._fragments += payload
                if not fin:
                    continue
                opcode, payload = self._frag_opcode, bytes(self._fragments)
                self._fragments = None
            elif self._fragments is not None:
                raise ProtocolError("new message inside a fragmented one")
            elif not fin:
                self._fragments, self._frag_opcode = bytearray(payload), opcode
                continue
            if opcode is Opcode.TEXT:
                try:
                    payload.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidPayload("text frame is not UTF-8") from None
            return opcode, payload

    def _next_frame(self) -> tuple[bool, Opcode, bytes] | None:
        buf = self._buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        if b0 & 0x70:
            raise ProtocolError("reserved bits set (no extension was negotiated)")
        opcode = _OPCODES.get(b0 & 0x0F)
        if opcode is None:
            raise ProtocolError(f"unknown opcode {b0 & 0x0F}")
        fin = bool(b0 & 0x80)
        if not b1 & 0x80:
            raise ProtocolError("client frame not masked")
        n, offset = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, offset = int.from_bytes(buf[2:4], "big"), 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, offset = int.from_bytes(buf[2:10], "big"), 10
        if opcode >= Opcode.CLOSE and (n > 125 or not fin):
            raise ProtocolError("control frame fragmented or over 125 bytes")
        pending = len(self._fragments) if opcode is Opcode.CONT and self._fragments else 0
        if pending + n > self.max_size:
            raise CloseError(f"message over {self.max_size} bytes", CloseCode.TOO_BIG)
        end = offset + 4 + n
        if len(buf) < end:
            return None
        mask = bytes(buf[offset : offset + 4])
        payload = apply_mask(bytes(buf[offset + 4 : end]), mask)
        del buf[:end]
        return fin, opcode, payload
