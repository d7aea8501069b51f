"""Frame-type labels for metrics and close records, from a small fixed set.

Outbound frames are labelled where they are encoded (the room and the
sessions know what they send), so the per-frame path never re-parses bytes.
Both protocols share the y-protocols names; Hocuspocus adds its own types.
"""

from __future__ import annotations

from enum import StrEnum


class Label(StrEnum):
    STEP1 = "SyncStep1"
    STEP2 = "SyncStep2"
    UPDATE = "SyncUpdate"
    AWARENESS = "Awareness"
    QUERY_AWARENESS = "QueryAwareness"
    AUTH = "Auth"
    AUTH_TOKEN = "AuthToken"
    PERMISSION_DENIED = "PermissionDenied"
    AUTHENTICATED = "Authenticated"
    STATELESS = "Stateless"
    CLOSE = "Close"
    SYNC_STATUS = "SyncStatus"
    PING = "Ping"
    PONG = "Pong"
