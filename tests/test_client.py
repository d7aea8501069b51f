"""The Python client keeps its token out of every log line (its own and the
websockets library's debug trace), against a real server."""

from __future__ import annotations

import logging

import pytest

from collab import create_app
from collab.client import YClient
from tests.core.helpers import settings
from tests.support.servers import run_app

pytestmark = pytest.mark.anyio

TOKEN = "client-secret-token-value"


async def test_the_token_is_masked_in_the_clients_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with run_app(create_app(settings())) as app:
        async with YClient(f"{app.ws_url}/room?access_token={TOKEN}", token=TOKEN) as client:
            await client.wait_for(lambda c: c.synced.is_set(), 5)
    trace = [r.getMessage() for r in caplog.records if r.name.startswith("collab.client")]
    assert any("GET /room?access_token=***&token=***" in line for line in trace), trace
    assert TOKEN not in caplog.text
