"""The README's curl examples of the HTTP API, run as they are (real curl,
real ``collab serve``), so the documentation cannot rot."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from pathlib import Path

import pytest

from collab.client import ApiClient
from collab.errors import ApiError
from tests.support.jsclient import JSClient
from tests.support.servers import REPO_ROOT, run_collab

from .helpers import API_KEY

pytestmark = pytest.mark.anyio

MARKER = "<!-- api-curl-examples:"


def curl_block() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    after = readme[readme.index(MARKER) :]
    match = re.search(r"```sh\n(.*?)```", after, re.S)
    assert match, "the curl block after the marker is missing"
    return match.group(1)


def test_the_block_has_a_curl_line_for_every_endpoint() -> None:
    block = curl_block()
    for needle in (
        "/api/rooms?all=1",
        '/api/rooms/team/notes"',
        "/json?types=",
        "?state_vector=",
        '/update"',
        '/text"',
        '/message"',
        "/api/connections/$CONN/message",
        '-X DELETE "$COLLAB/api/connections/$CONN',
        '/team/notes/connections"',
        '-X DELETE "$COLLAB/api/rooms/team/notes"',
        "/api/openapi.json",
    ):
        assert needle in block, needle


async def test_readme_curl_lines_run_against_a_real_server(tmp_path: Path) -> None:
    env = {
        "COLLAB_STORE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "COLLAB_API_KEYS": API_KEY,
        "COLLAB_FLUSH_DEBOUNCE": "0.05",
        "COLLAB_FLUSH_MAX_WAIT": "0.2",
    }
    curl = shutil.which("curl")
    assert curl is not None, "curl is needed (Debian package curl)"
    async with run_collab(tmp_path, env) as srv, JSClient.start(tmp_path) as js:
        await js.call(
            "connect_hocuspocus",
            handle="h",
            url=f"{srv.ws_url}/hocuspocus",
            name="team/notes",
            max_attempts=1,
        )
        api = ApiClient(f"{srv.url}/api", API_KEY)
        [room] = (await api.rooms())["rooms"]
        [conn] = room["connections"]
        work = tmp_path / "curl"
        work.mkdir()
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-euo",
            "pipefail",
            "-c",
            curl_block(),
            cwd=work,
            env={**os.environ, "COLLAB": srv.url, "COLLAB_API_KEY": API_KEY, "CONN": conn},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, f"{err.decode()}\n{out.decode()}"
        text = out.decode()
        assert '"hello from a bot\\n"' in text  # the append's answer
        assert '{"text":[{"insert":"hello from a bot\\n"}],"meta":{}}' in text
        assert '"openapi":"3.1.0"' in text
        assert (work / "notes.bin").read_bytes() == (work / "diff.bin").read_bytes()

        # What the lines did, as the Hocuspocus client saw it.
        await js.call("wait_text", handle="h", equals="hello from a bot\n", timeout_ms=10_000)
        payloads = [e["payload"] for e in js.events_for("h", "stateless")]
        assert payloads == ['{"type": "notice"}', "just you"]
        close = await js.event(event="close", handle="h", timeout=10)
        assert (close["code"], close["reason"]) == (4403, "access revoked")
        # ... and the document is gone from the store.
        with pytest.raises(ApiError) as gone:
            await api.get_update("team/notes")
        assert gone.value.status == 404
        # (The 404 read loaded it, empty, for the grace period: nothing is stored.)
        listed = (await api.rooms(include_stored=True))["rooms"]
        assert [(r["name"], r["loaded"], r["size"]) for r in listed] == [("team/notes", True, 2)]
