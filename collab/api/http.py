"""Request parsing for the HTTP API: room paths, bounded bodies, close codes.

Every helper raises :class:`~collab.errors.ApiError`, answered as a JSON
error before anything touches a document.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Set
from typing import Any
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import JSONResponse

from ..errors import ApiError, CloseError
from ..rooms.names import validate_room_name

# The last path segment that makes /rooms/{room}/<action> an action on the
# room rather than part of its name (a room whose name ends in one of these
# is reached with its '/' encoded as %2F).
ACTIONS = frozenset({"json", "update", "text", "message", "connections"})
MAX_REASON_BYTES = 120  # a close frame's reason must fit in 123 bytes


def error_response(exc: ApiError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(
        {"error": exc.error, "message": exc.message}, status_code=exc.status, headers=headers
    )


def room_and_action(request: Request, max_len: int, reserved: Set[str]) -> tuple[str, str]:
    """The room name and action ("" = the room itself) of /rooms/{rest}.

    Segments are split on the raw path, so ``a%2Fjson`` is the room "a/json"
    while ``a/json`` is the JSON export of room "a". Raises 400 for a name
    that is not a room name (the same rule as on the WebSocket paths).
    """
    rest: str = request.path_params["rest"]
    raw = request.scope.get("raw_path")
    if isinstance(raw, bytes):
        # The raw segments that decode to exactly what the router matched:
        # counted on the raw path itself, so an encoded '/' before the room
        # (/api/rooms%2Fteam/...) cannot shift which segments are the room.
        every = raw.decode("latin-1").split("/")
        for count in range(1, len(every) + 1):
            if "/".join(unquote(s) for s in every[-count:]) == rest:
                raw_segments = every[-count:]
                break
        else:
            raise ApiError(400, "bad_request", "the path does not decode to the room it routes to")
        segments = [unquote(s) for s in raw_segments]
    else:  # an ASGI server without raw_path: no %2F distinction
        raw_segments = segments = rest.split("/")
    action = ""
    if len(raw_segments) > 1 and raw_segments[-1] in ACTIONS:
        action = raw_segments[-1]
        segments = segments[:-1]
    room = "/".join(segments)
    try:
        validate_room_name(room, max_len, reserved)
    except CloseError as exc:
        raise ApiError(400, "bad_room_name", exc.reason) from None
    return room, action


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (without
    reading it all first when Content-Length says so)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, "too_large", f"body of {declared} bytes exceeds {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, limit: int) -> dict[str, Any]:
    body = await read_body(request, limit)
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ApiError(400, "bad_request", "the body is not JSON") from None
    except RecursionError:
        raise ApiError(400, "bad_request", "the body is nested too deeply") from None
    if not isinstance(value, dict):
        raise ApiError(400, "bad_request", "the body must be a JSON object")
    return value


def string_field(body: dict[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise ApiError(400, "bad_request", f"{name!r} must be a string")
    return value


def state_vector(request: Request) -> bytes | None:
    """``?state_vector=`` as base64 (standard or URL-safe, padding optional)."""
    text = request.query_params.get("state_vector")
    if text is None:
        return None
    # A '+' in a query string arrives as a space when the caller did not encode it.
    text = text.replace(" ", "+").replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "bad_request", "state_vector is not base64") from None


def close_params(request: Request, default_code: int, default_reason: str) -> tuple[int, str]:
    """``?code=&reason=``: an application close code (1000 or 3000-4999)."""
    raw = request.query_params.get("code", str(default_code))
    if not raw.isdigit() or not (int(raw) == 1000 or 3000 <= int(raw) <= 4999):
        raise ApiError(400, "bad_request", "code must be 1000 or between 3000 and 4999")
    reason = request.query_params.get("reason", default_reason)
    if len(reason.encode("utf-8")) > MAX_REASON_BYTES:
        raise ApiError(400, "bad_request", f"reason is longer than {MAX_REASON_BYTES} bytes")
    return int(raw), reason
