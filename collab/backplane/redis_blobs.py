"""Payloads too large for Redis pub/sub travel through a key instead.

Redis disconnects a subscriber whose output buffer passes its pub/sub limit
(``client-output-buffer-limit pubsub 32mb 8mb 60`` by default; ElastiCache
has the same): one 40 MB anti-entropy reply would cut every other instance
off the room, and the reply after their reconnect would do it again. A
"sync request" alone does not help either, since the answer to it is the
same 40 MB. So a payload above ``COLLAB_REDIS_MAX_MESSAGE_BYTES`` is never
published: it is written to a short-lived key, and a small pointer to that
key is published in its place. A subscriber that receives a pointer reads the
key (an ordinary reply, not subject to the pub/sub limit) and hands the
payload to the room as if it had been published. A pointer whose key is gone
(it expired, Redis restarted) is logged and answered with anti-entropy.

A pointer starts with a byte that no backplane message kind uses (see
``collab.wire.backplane``), so it can never be mistaken for a message.
"""

from __future__ import annotations

import uuid

POINTER_MARK = b"\xffblob:"
# Subscribers read the key as soon as its pointer arrives; a reader that
# misses it resyncs. Short, so that a writer sending large edits in a loop
# holds at most this long of them in Redis (see README, Limits).
BLOB_TTL_MS = 30_000


def new_key(channel: str) -> str:
    """A fresh key next to ``channel`` (on a cluster the channel's hash tag
    puts it in the channel's slot)."""
    return f"{channel}:blob:{uuid.uuid4().hex}"


def pointer(key: str) -> bytes:
    return POINTER_MARK + key.encode("ascii")


def pointed_key(data: bytes) -> str | None:
    """The key a pointer names, or None when ``data`` is an ordinary message."""
    if not data.startswith(POINTER_MARK):
        return None
    return data[len(POINTER_MARK) :].decode("ascii", "replace")
