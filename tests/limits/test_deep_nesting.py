"""A document nested ~50,000 maps deep, then its top deleted: yrs deletes
nested types recursively, which overflowed the 8 MiB main-thread stack and
killed the whole process (SIGSEGV, every room of the instance gone). `collab
serve` runs its event loop on a thread with a large stack; the server lives
and the room's other clients keep converging."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
import websockets
from pycrdt import Doc, Map, merge_updates

from collab.client import YClient
from collab.wire import lib0
from collab.wire import ywebsocket as p
from tests.support.servers import run_collab

pytestmark = pytest.mark.anyio

DEPTH = 50_000


def nested_then_deleted() -> bytes:
    doc: Doc = Doc()
    cur = doc.get("m", type=Map)
    with doc.transaction():
        for _ in range(DEPTH):
            child: Map = Map()
            cur["c"] = child
            cur = child
    created = doc.get_update()
    # A delete set removing the first struct of this client: the top map.
    w = lib0.write_var_uint
    deleted = w(0) + w(1) + w(doc.client_id) + w(1) + w(0) + w(1)
    return merge_updates(created, deleted)


async def test_a_deeply_nested_delete_does_not_kill_the_server(tmp_path: Path) -> None:
    update = nested_then_deleted()
    assert len(update) < 4 * 1024 * 1024  # one frame, under COLLAB_MAX_FRAME_BYTES
    async with run_collab(tmp_path, env={"COLLAB_STORE_URL": "memory://"}) as srv:
        async with YClient(f"{srv.ws_url}/victim") as bystander:
            async with websockets.connect(f"{srv.ws_url}/victim", max_size=None) as attacker:
                await attacker.recv()
                await attacker.send(p.encode_update(update))
                bystander.text().insert(0, "still here")
                async with YClient(f"{srv.ws_url}/victim") as late:
                    await late.wait_for(lambda c: "still here" in str(c.text()), 30)
        assert srv.returncode is None, srv.log_text()[-2000:]
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{srv.url}/healthz")).status_code == 200
