"""The one exception hierarchy of collab, and the close codes it maps to.

::

    CollabError
    ├── ConfigError            a setting is missing or malformed (names it)
    ├── CloseError             ends one connection with a specific close code
    │   ├── ProtocolError      1002: a frame that does not parse
    │   ├── InvalidPayload     1007: parses, but its content is rejected
    │   ├── PolicyViolation    1008: e.g. a bad room name, a rate or count limit
    │   ├── TooLarge           1009: a document or awareness state past its limit
    │   ├── Overloaded         1013: outbound queue overflow, dependency down
    │   └── Unauthorized / Forbidden   4401 / 4403 (the JWT check: access.tokens)
    ├── StoreError             a store operation failed
    │   └── VersionConflict    compare-and-set lost; retry
    ├── BackplaneError         the cross-instance link failed
    └── ApiError               an HTTP API call refused (status + JSON error)
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    """WebSocket close codes used by collab (DESIGN.md §4)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS = 1005
    ABNORMAL = 1006
    INVALID_PAYLOAD = 1007
    POLICY = 1008
    TOO_BIG = 1009
    INTERNAL = 1011
    TRY_AGAIN_LATER = 1013
    RESET = 4205
    DELETED = 4404  # the document was deleted (HTTP API); y-websocket does not reconnect
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    TIMEOUT = 4408


class CollabError(Exception):
    """Base of every error collab raises on purpose."""


class ConfigError(CollabError):
    """A setting is missing or malformed; the message names the setting."""


class CloseError(CollabError):
    """An error that ends one connection with ``code`` and ``reason``."""

    code: CloseCode = CloseCode.INTERNAL

    def __init__(self, reason: str, code: CloseCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code


class ProtocolError(CloseError):
    code = CloseCode.PROTOCOL_ERROR


class InvalidPayload(CloseError):
    code = CloseCode.INVALID_PAYLOAD


class PolicyViolation(CloseError):
    code = CloseCode.POLICY


class TooLarge(CloseError):
    code = CloseCode.TOO_BIG


class Overloaded(CloseError):
    code = CloseCode.TRY_AGAIN_LATER


class Unauthorized(CloseError):
    code = CloseCode.UNAUTHORIZED


class Forbidden(CloseError):
    code = CloseCode.FORBIDDEN


class StoreError(CollabError):
    """A store operation failed."""


class VersionConflict(StoreError):
    """Another writer changed the stored version first; re-read and retry."""


class BackplaneError(CollabError):
    """The cross-instance link (Redis) failed."""


class ApiError(CollabError):
    """An HTTP API call refused: answered with ``status`` and the JSON body
    ``{"error": error, "message": message}`` (collab.api)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message


def is_pycrdt_rejection(exc: BaseException) -> bool:
    """Whether pycrdt refused its input: it raises ValueError for an
    undecodable update, and surfaces a Rust panic as pyo3's PanicException,
    a BaseException that cannot be imported."""
    return isinstance(exc, ValueError) or type(exc).__name__ == "PanicException"
