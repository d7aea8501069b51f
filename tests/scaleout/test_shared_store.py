"""Two instances storing and compacting one document in one PostgreSQL at
once, round after round: the stored document always holds every edit.

With Redis each instance persists what it receives too, so both append the
same document and both fold its log into the snapshot, racing on the
snapshot version (the CloudFront etag incident: writers without a version
lost updates).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import psycopg
import pytest

from tests.observability.common import eventually

from .helpers import converged, instances, js_client, stored_marks, tokens, type_tokens

pytestmark = pytest.mark.anyio

ROOM = "shared/store"
ROUNDS = 8


async def test_two_instances_store_and_compact_one_document(
    tmp_path: Path, redis_factory, postgres_url: str
) -> None:
    redis = redis_factory(tls=True, password="auth-token")
    env = {
        "COLLAB_REDIS_URL": redis.url(),
        "COLLAB_STORE_URL": postgres_url,
        # Compact after every couple of batches, write batches quickly.
        "COLLAB_COMPACT_THRESHOLD": "2",
        "COLLAB_FLUSH_DEBOUNCE": "0.01",
        "COLLAB_FLUSH_MAX_WAIT": "0.03",
    }
    async with (
        instances(tmp_path, 2, env) as (a, b),
        js_client(tmp_path) as js,
        stored_marks(postgres_url) as stored,
    ):
        await js.call("connect", handle="a", url=a.ws_url, room=ROOM)
        await js.call("connect", handle="b", url=b.ws_url, room=ROOM)
        written: list[str] = []
        for round_no in range(ROUNDS):
            # Three bursts a round, each stored before the next: several writes
            # per round from each instance, so compactions keep racing.
            for burst in range(3):
                marks = {h: tokens(f"{h}{round_no}.{burst}", 2) for h in ("a", "b")}
                await asyncio.gather(*(type_tokens(js, h, marks[h]) for h in marks))
                written += marks["a"] + marks["b"]
                await converged(js, ["a", "b"], written)
                # Both instances' batched writes land within a bound; the
                # document must be whole in the store every time, not just
                # at the end.
                want = set(written)
                await eventually(lambda: stored(ROOM), want.issubset, timeout=20)

    with psycopg.connect(postgres_url) as conn:
        version = conn.execute(
            "SELECT version FROM collab_snapshots WHERE room = %s", (ROOM,)
        ).fetchone()
        rows = conn.execute(
            "SELECT count(*) FROM collab_updates WHERE room = %s", (ROOM,)
        ).fetchone()
    assert version is not None and rows is not None
    # Compaction really ran, many times (each one bumps the version), and the
    # log stayed short.
    assert version[0] >= ROUNDS, version
    assert rows[0] <= 3 * 2, rows
