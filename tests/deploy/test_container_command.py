"""Run exactly what the image runs -- the Dockerfile's ENTRYPOINT + CMD with
its ENV -- outside Docker, and talk to it like a Yjs client.

Only what cannot work outside a container is rewritten: /opt/venv/bin is
this test environment's bin directory, the image's volume (/data) is a temp
directory, the host 0.0.0.0 becomes 127.0.0.1 (tests bind loopback only) and
the port is a free one. Everything else (the console script, the flags, the
JSON log format, the SQLite store URL) is the image's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pycrdt
import pytest

from .artifacts import image, option
from .serverproc import STEP1, STEP2, ServerProcess, YClient, free_port, hermetic_environ, venv_bin

pytestmark = pytest.mark.anyio


def _rewrite(value: str, volume_dirs: dict[str, Path]) -> str:
    for volume, local in volume_dirs.items():
        value = value.replace(volume, str(local))
    return value


def container_process(tmp_path: Path) -> ServerProcess:
    img = image()
    volume_dirs = {}
    for volume in img.volumes:
        local = tmp_path / volume.strip("/").replace("/", "_")
        local.mkdir()
        volume_dirs[volume] = local

    argv = list(img.argv)
    assert argv[0] == "collab", argv
    argv[0] = venv_bin("collab")
    assert option(argv, "--host") == "0.0.0.0"
    argv[argv.index("--host") + 1] = "127.0.0.1"
    port = free_port()
    argv[argv.index("--port") + 1] = str(port)

    env = hermetic_environ()
    for key, value in img.env.items():
        if key == "PATH":
            value = value.replace("/opt/venv/bin", str(Path(sys.executable).parent))
            value = value.replace("$PATH", env.get("PATH", ""))
        env[key] = _rewrite(value, volume_dirs)
    workdir = _rewrite(img.final.last("WORKDIR") or "/", volume_dirs)
    return ServerProcess(argv, env, port, Path(workdir), tmp_path / "server.log")


async def test_image_command_serves_yjs_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    server = container_process(tmp_path)
    store_url = server.env["COLLAB_STORE_URL"]
    assert store_url.startswith(f"sqlite:///{tmp_path}"), store_url
    server.start()
    try:
        response = await server.wait_status("/healthz", 200)
        assert response.json()["status"] == "ok"

        # The image's HEALTHCHECK, as Docker would run it.
        code = image().healthcheck[2].replace(":1234/", f":{server.port}/")
        check = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, timeout=30, check=False
        )
        assert check.returncode == 0, check.stderr

        client = await YClient.connect(f"{server.ws_base}/container-smoke")
        first = await client.next_sync()
        assert first.subtype == STEP1, "the server must open with sync step 1"
        # Our step 1 (empty state vector) must be answered with step 2.
        await client.ws.send(pycrdt.create_sync_message(client.doc))
        while (await client.next_sync()).subtype != STEP2:
            pass
        await client.insert("from the image command")
        await client.close()

        server.terminate()
        assert await server.wait_exit() == 0, server.output()
    finally:
        server.kill()

    # The store URL from the image's ENV was used: the SQLite file is on the volume.
    assert Path(store_url.removeprefix("sqlite:///")).is_file()
    # COLLAB_LOG_FORMAT=json from the image: every line is one JSON object.
    lines = [line for line in server.output().splitlines() if line.strip()]
    assert lines, "the server logged nothing"
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"not a JSON log line: {line!r}\n{server.output()}")
        assert isinstance(record, dict), line
