"""lib0 encoding, the variable-length integers and byte strings every Yjs
protocol frame is built from (pure functions over bytes, no I/O).

``varUint`` is unsigned LEB128; ``varUint8Array`` is a varUint length then that
many bytes; ``varString`` is a varUint8Array of UTF-8. A malformed input raises
:class:`~collab.errors.ProtocolError` (close 1002).
"""

from __future__ import annotations

from ..errors import ProtocolError

# A varUint longer than this cannot be a length or an id we accept (2**63).
_MAX_VARUINT_BYTES = 9


def write_var_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("varUint must be non-negative")
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def write_var_bytes(data: bytes) -> bytes:
    return write_var_uint(len(data)) + data


def write_var_string(text: str) -> bytes:
    return write_var_bytes(text.encode("utf-8"))


def read_var_uint(buf: bytes, pos: int) -> tuple[int, int]:
    """Return ``(value, next_pos)``; raise ProtocolError when truncated."""
    value = 0
    shift = 0
    for _i in range(_MAX_VARUINT_BYTES):
        if pos >= len(buf):
            raise ProtocolError("truncated varUint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise ProtocolError("varUint too long")


def read_var_bytes(buf: bytes, pos: int) -> tuple[bytes, int]:
    length, pos = read_var_uint(buf, pos)
    end = pos + length
    if end > len(buf):
        raise ProtocolError("length runs past the end of the frame")
    return buf[pos:end], end


def read_var_string(buf: bytes, pos: int) -> tuple[str, int]:
    raw, pos = read_var_bytes(buf, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("string is not UTF-8") from exc
