"""COLLAB_MAX_DOCUMENTS_PER_SOCKET: one Hocuspocus socket opening 2,000
documents (session-aware addresses of one room, each of which would hold its
own encoded copy of every broadcast) is closed with 1008 at the limit; the
room's clients keep converging and the server's memory does not follow the
attack."""

from __future__ import annotations

from pathlib import Path

import pytest
import websockets

from collab.wire import hocuspocus as hp
from tests.limits.helpers import MiB, close_of, metric, pair, settled_rss, still_converging
from tests.support.servers import run_collab

pytestmark = pytest.mark.anyio

LIMIT = 50
ATTEMPTS = 2000


async def test_2000_documents_on_one_socket_are_refused_past_the_limit(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_LOG_LEVEL": "warning",
        "COLLAB_MAX_DOCUMENTS_PER_SOCKET": str(LIMIT),
        "COLLAB_AUTH_QUEUE_FRAMES": "4096",
    }
    async with run_collab(tmp_path, env=env) as srv:
        async with pair(f"{srv.ws_url}/shared") as (a, b):
            await still_converging(a, b, "before")
            baseline = await settled_rss(srv)
            opened = 0
            async with websockets.connect(f"{srv.ws_url}/hocuspocus", max_size=None) as ws:
                try:
                    for i in range(0, ATTEMPTS, 25):
                        batch = [f"shared\0s{j}" for j in range(i, i + 25)]
                        for address in batch:
                            await ws.send(hp.encode_auth_token(address, "", "4.8.0"))
                            await ws.send(hp.encode_step1(address, b"\x00"))
                        # Each document answers Authenticated once it is open.
                        answered: set[str] = set()
                        while len(answered) < len(batch):
                            msg = hp.decode_frame(await ws.recv())
                            if isinstance(msg, hp.Authenticated):
                                answered.add(msg.address)
                        opened += len(answered)
                except websockets.ConnectionClosed:
                    pass
                code, reason = await close_of(ws)
            assert code == 1008 and f"more than {LIMIT} documents on one socket" in reason
            assert opened == LIMIT
            # A broadcast after the attack: nobody is left holding 2,000 copies of it.
            a.text().insert(0, "p" * MiB)
            await b.wait_for(lambda c: str(c.text()).startswith("p" * 100), 15)
            await still_converging(a, b, "after")
            grown = await settled_rss(srv) - baseline
            assert grown < 24 * MiB, f"RSS grew {grown / MiB:.1f} MiB"
        assert (
            await metric(
                srv, "collab_frames_rejected_total", endpoint="hocuspocus", reason="PolicyViolation"
            )
            == 1
        )
