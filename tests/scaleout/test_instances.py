"""Instances share rooms through a real Redis with TLS and AUTH: three
``collab serve`` processes, real y-websocket clients on each, text and
cursors converge; ``--workers 2`` behaves the same within one host.

Redis is set up as ElastiCache is (TLS, AUTH token, no client certificates)
and, once, with client certificates required (Redis's own default).
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest

from tests.support.redis_server import RedisServer

from .helpers import (
    T_MS,
    connections_opened,
    converged,
    instances,
    js_client,
    tokens,
    type_tokens,
)

pytestmark = pytest.mark.anyio

AUTH_TOKEN = "elasticache-auth-token"
ACL_USER, ACL_PASSWORD = "collab", "acl-secret"


def redis_env(server: RedisServer, *, client_cert: bool) -> dict[str, str]:
    """Credentials and TLS files as separate settings, the way a secret store
    injects them (the URL carries neither password nor paths)."""
    assert server.certs is not None
    env = {
        "COLLAB_REDIS_URL": f"rediss://127.0.0.1:{server.port}/0",
        "COLLAB_REDIS_USERNAME": ACL_USER,
        "COLLAB_REDIS_PASSWORD": ACL_PASSWORD,
        "COLLAB_REDIS_SSL_CA_CERTS": str(server.certs.ca_cert),
        "COLLAB_STORE_URL": "memory://",
    }
    if client_cert:
        env["COLLAB_REDIS_SSL_CERTFILE"] = str(server.certs.client_cert)
        env["COLLAB_REDIS_SSL_KEYFILE"] = str(server.certs.client_key)
    return env


@pytest.mark.parametrize(
    "client_certs_required", [False, True], ids=["elasticache-style", "client-certs-required"]
)
async def test_js_clients_on_three_instances_converge_with_cursors(
    tmp_path: Path, redis_factory, client_certs_required: bool
) -> None:
    server = redis_factory(
        tls=True,
        password=AUTH_TOKEN,
        users={ACL_USER: ACL_PASSWORD},
        tls_auth_clients=client_certs_required,
    )
    env = redis_env(server, client_cert=client_certs_required)
    async with instances(tmp_path, 3, env) as procs, js_client(tmp_path) as js:
        handles = ["a", "b", "c"]
        for handle, proc in zip(handles, procs, strict=True):
            await js.call("connect", handle=handle, url=proc.ws_url, room="team/notes")

        # Concurrent typing on all three instances at once.
        marks = {h: tokens(h, 15) for h in handles}
        await asyncio.gather(*(type_tokens(js, h, marks[h]) for h in handles))
        await converged(js, handles, [m for ms in marks.values() for m in ms])

        # Cursors: everyone sees everyone, across instances.
        for handle in handles:
            await js.call(
                "set_awareness", handle=handle, field="user", value={"name": handle.upper()}
            )
        for handle in handles:
            for other in handles:
                await js.call("wait_awareness", handle=handle, value=other.upper(), timeout_ms=T_MS)

        # A socket closing on instance C removes its cursor on A and B.
        await js.call("disconnect", handle="c")
        for handle in ("a", "b"):
            await js.call(
                "wait_awareness", handle=handle, value="C", present=False, timeout_ms=T_MS
            )
            await js.call("wait_awareness", handle=handle, value="A", timeout_ms=T_MS)

        # A late joiner on C gets the whole document (from C's own copy).
        await js.call("connect", handle="late", url=procs[2].ws_url, room="team/notes")
        final = await js.call("text", handle="a")
        await js.call("wait_text", handle="late", equals=final, timeout_ms=T_MS)


async def test_workers_share_a_room(tmp_path: Path, redis_factory) -> None:
    """``collab serve --workers 2``: sockets the kernel hands to different
    workers of one port still edit one room together."""
    server = redis_factory(tls=True, password=AUTH_TOKEN, users={ACL_USER: ACL_PASSWORD})
    env = redis_env(server, client_cert=False)
    room = "workers/room"
    async with instances(tmp_path, 1, env, ("--workers", "2")) as (srv,), js_client(tmp_path) as js:
        # Connect until both workers hold a client (each worker's connection
        # ids carry its own prefix); the kernel picks, so bound the attempts.
        by_worker: dict[str, str] = {}
        handles: list[str] = []
        for i in range(24):
            handle = f"w{i}"
            await js.call("connect", handle=handle, url=srv.ws_url, room=room)
            handles.append(handle)
            opened = connections_opened(srv, room)
            assert len(opened) == len(handles), opened
            by_worker.setdefault(opened[-1]["conn_id"].rsplit("-", 1)[0], handle)
            if len(by_worker) == 2:
                break
        assert len(by_worker) == 2, f"all {len(handles)} sockets went to one worker"
        one, two = by_worker.values()
        prefixes = collections.Counter(
            r["conn_id"].rsplit("-", 1)[0] for r in connections_opened(srv, room)
        )
        assert len(prefixes) == 2

        marks_one, marks_two = tokens("one", 10), tokens("two", 10)
        await asyncio.gather(type_tokens(js, one, marks_one), type_tokens(js, two, marks_two))
        await converged(js, handles, marks_one + marks_two)
        await js.call("set_awareness", handle=one, field="user", value={"name": "One"})
        await js.call("wait_awareness", handle=two, value="One", timeout_ms=T_MS)
