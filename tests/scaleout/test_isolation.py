"""Deployments that share one Redis stay apart, and a document too large for
Redis pub/sub still crosses instances (real TLS + AUTH Redis, real processes).
"""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

import pytest

from collab.client import YClient
from tests.observability.common import scrape, value
from tests.support.redis_server import RedisServer

from .helpers import converged, found, instances, js_client, tokens, type_tokens

pytestmark = pytest.mark.anyio

AUTH_TOKEN = "shared-redis-auth-token"


def env_for(server: RedisServer, db: int) -> dict[str, str]:
    assert server.certs is not None
    return {
        "COLLAB_REDIS_URL": f"rediss://127.0.0.1:{server.port}/{db}",
        "COLLAB_REDIS_PASSWORD": AUTH_TOKEN,
        "COLLAB_REDIS_SSL_CA_CERTS": str(server.certs.ca_cert),
        "COLLAB_STORE_URL": "memory://",
    }


async def test_stacks_on_db0_and_db1_of_one_redis_never_share_a_room(
    tmp_path: Path, redis_factory
) -> None:
    """Same prefix, same room name, one Redis: pub/sub ignores the database
    index, so only the index in the channel name keeps the stacks apart."""
    server = redis_factory(tls=True, password=AUTH_TOKEN)
    async with (
        instances(tmp_path / "a", 2, env_for(server, 0)) as stack_a,
        instances(tmp_path / "b", 2, env_for(server, 1)) as stack_b,
        js_client(tmp_path) as js,
    ):
        for tag, stack in (("a", stack_a), ("b", stack_b)):
            for i, proc in enumerate(stack):
                await js.call("connect", handle=f"{tag}{i}", url=proc.ws_url, room="shared")
        marks_a, marks_b = tokens("A", 3), tokens("B", 3)
        await type_tokens(js, "a0", marks_a)
        await type_tokens(js, "b0", marks_b)
        # Each stack converges across its own two instances, through Redis...
        text_a = await converged(js, ["a0", "a1"], marks_a)
        text_b = await converged(js, ["b0", "b1"], marks_b)
        # ...and by then the other stack's edits, had they crossed, would be there.
        assert not found(text_a) & set(marks_b)
        assert not found(text_b) & set(marks_a)
        late = tokens("A", 1)
        await type_tokens(js, "a1", late)
        await converged(js, ["a0", "a1"], marks_a + late)
        assert late[0] not in await js.call("text", handle="b1")


def readme_acl() -> list[str]:
    """The README's ACL SETUSER line, as words."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    (line,) = re.findall(r"^ACL SETUSER collab-prod .*$", readme, re.M)
    return line.split()


async def test_a_40_mb_document_converges_across_instances(tmp_path: Path, redis_factory) -> None:
    """Past Redis's pub/sub output-buffer limit (32 MB hard by default) a
    subscriber is disconnected; the 40 MB anti-entropy reply a late instance
    needs must therefore go through a key, not be published. The instances
    use the README's ACL user, exactly as written."""
    server = redis_factory(tls=True, password=AUTH_TOKEN)
    with server.client() as admin:
        admin.execute_command(*readme_acl())
    env = {
        **env_for(server, 0),
        "COLLAB_REDIS_USERNAME": "collab-prod",
        "COLLAB_REDIS_PASSWORD": "long-random-password",
        "COLLAB_REDIS_PREFIX": "collab-prod",
    }
    async with instances(tmp_path, 2, env) as (a, b):
        chunks = ["".join(random.choices(string.ascii_letters, k=3_500_000)) for _ in range(12)]
        total = sum(map(len, chunks))
        async with YClient(f"{a.ws_url}/big") as writer:
            for chunk in chunks:  # one frame each, under COLLAB_MAX_FRAME_BYTES
                text = writer.text()
                text.insert(len(text), chunk)
                await writer.wait_for(lambda c, n=len(text): len(c.text()) >= n, 30)
            # B loads the room with nothing in its own store: all of it comes from A.
            async with YClient(f"{b.ws_url}/big") as reader:
                await reader.wait_for(lambda c: len(c.text()) == total, 120)
                assert str(reader.text()) == "".join(chunks)
        large = value(await scrape(a.url), "collab_backplane_events_total", event="large")
        assert large >= 1
        assert "expired before it was read" not in a.log_text() + b.log_text()
