"""Ten sockets that never read, on a large document: each holds a copy of
the document in its write buffer; once closed (1013, its queue overflowing)
and silent past the close timeout, the socket is aborted and the buffer goes
with it. The readers keep converging throughout."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from collab.wire import ywebsocket as p
from tests.core.helpers import raw_ws_connect
from tests.limits.helpers import MiB, metric, pair, settled_rss, still_converging
from tests.observability.rawws import OP_BINARY
from tests.support.servers import run_collab
from tests.support.waiting import wait_until

pytestmark = pytest.mark.anyio

DOC = 3 * MiB
SOCKETS = 10


def masked_binary(payload: bytes) -> bytes:
    """A client frame with an all-zero mask (the payload goes as is)."""
    n = len(payload)
    head = (
        bytes((0x80 | OP_BINARY, 0x80 | n))
        if n < 126
        else bytes((0x80 | OP_BINARY, 0x80 | 126)) + n.to_bytes(2, "big")
    )
    return head + b"\x00\x00\x00\x00" + payload


async def test_non_readers_on_a_large_document_release_their_buffers(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": "memory://",
        "COLLAB_LOG_LEVEL": "warning",
        "COLLAB_OUTBOUND_QUEUE_FRAMES": "16",
        "COLLAB_PING_INTERVAL": "600",
        "COLLAB_FANOUT_WINDOW": "0",
    }
    async with run_collab(tmp_path, env=env) as srv:
        url = f"{srv.ws_url}/big"
        async with pair(url) as (a, b):
            a.text().insert(0, "d" * DOC)
            await b.wait_for(lambda c: len(str(c.text())) >= DOC, 20)
            baseline = await settled_rss(srv)
            socks: list[socket.socket] = []
            for _ in range(SOCKETS):
                # Asks for the whole document (step1 with an empty state
                # vector), then never reads a byte.
                sock = await asyncio.to_thread(raw_ws_connect, srv.port, "/big", 4096)
                sock.sendall(masked_binary(p.encode_step1(b"\x00")))
                socks.append(sock)
            # Edits keep flowing to everyone: the non-readers' queues fill.
            for i in range(60):
                await still_converging(a, b, f"e{i}")
                if await metric(srv, "collab_outbound_queue_overflows_total") >= SOCKETS:
                    break
            assert await metric(srv, "collab_outbound_queue_overflows_total") >= SOCKETS
            # Past the close timeout the sockets are aborted: their buffers are gone.
            await wait_until(
                lambda: srv.log_text().count("aborting the socket") >= SOCKETS,
                timeout=15,
                what="every non-reader aborted",
            )
            assert await metric(srv, "collab_connection_closes_total", code="1013") >= SOCKETS
            await still_converging(a, b, "after")
            grown = await settled_rss(srv) - baseline
            # Ten document copies were buffered; what is left is not one per socket.
            assert grown < 3 * DOC, f"RSS grew {grown / MiB:.1f} MiB"
            for sock in socks:
                sock.close()
