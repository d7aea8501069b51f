"""Awareness (presence) updates: pure decode, validation and encode.

An awareness update is ``varUint count`` then, per client, ``varUint
clientID, varUint clock, varString JSON state``; the state ``null`` means the
client left. States stay raw JSON text (validated once), so that re-encoding
for a late joiner never re-serialises.

Every browser that joins later parses what we relay, so a state is checked
as JavaScript would need it: client ids and clocks are safe integers (below
2**53, or Yjs loses precision and mixes clients up), numbers are finite
(``NaN`` and ``Infinity`` are not JSON, and y-protocols throws on them), and
nesting is shallow (checked before parsing: a deep ``[[[[...`` would give a
RecursionError here and a stack overflow in a browser).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from ..errors import InvalidPayload, ProtocolError, TooLarge
from .lib0 import read_var_bytes, read_var_uint, write_var_string, write_var_uint

NULL_STATE = "null"
MAX_SAFE_INTEGER = 2**53 - 1
MAX_DEPTH = 32
# A JSON string literal, escapes included: skipped when measuring depth.
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Entry:
    client_id: int
    clock: int
    state: str  # JSON text; "null" = removed


def _reject_constant(name: str) -> object:
    raise InvalidPayload(f"awareness state holds {name}, which is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise InvalidPayload("awareness state holds a number too large to be finite")
    return value


def _depth(state: str) -> int:
    if state.count("[") + state.count("{") <= MAX_DEPTH:
        return 0  # cannot be deeper than that: the common, cheap case
    depth = deepest = 0
    for char in _STRING.sub("", state):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def check_state(client_id: int, state: str) -> None:
    """Raise InvalidPayload (1007) unless ``state`` is JSON a browser can take."""
    if _depth(state) > MAX_DEPTH:
        raise InvalidPayload(f"awareness state of client {client_id} nests deeper than {MAX_DEPTH}")
    try:
        json.loads(state, parse_constant=_reject_constant, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload(f"awareness state of client {client_id} is not JSON") from exc


def decode_update(update: bytes, *, max_state_bytes: int | None = None) -> list[Entry]:
    """Decode and validate an awareness update: invalid content raises 1007,
    a state longer than ``max_state_bytes`` (UTF-8) raises 1009."""
    count, pos = read_var_uint(update, 0)
    entries: list[Entry] = []
    for _ in range(count):
        client_id, pos = read_var_uint(update, pos)
        clock, pos = read_var_uint(update, pos)
        if client_id > MAX_SAFE_INTEGER or clock > MAX_SAFE_INTEGER:
            raise InvalidPayload("awareness client id or clock is not below 2**53")
        raw, pos = read_var_bytes(update, pos)
        if max_state_bytes is not None and len(raw) > max_state_bytes:
            raise TooLarge(
                f"awareness state of client {client_id} is {len(raw)} bytes, "
                f"more than {max_state_bytes}"
            )
        try:
            state = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProtocolError("string is not UTF-8") from exc
        check_state(client_id, state)
        entries.append(Entry(client_id, clock, state))
    if pos != len(update):
        raise ProtocolError("trailing bytes after awareness update")
    return entries


def encode_update(entries: list[Entry]) -> bytes:
    parts = [write_var_uint(len(entries))]
    for e in entries:
        parts.append(write_var_uint(e.client_id))
        parts.append(write_var_uint(e.clock))
        parts.append(write_var_string(e.state))
    return b"".join(parts)
