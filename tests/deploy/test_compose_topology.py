"""The docker-compose stack without Docker: the same processes with the same
arguments, environment and config files, on loopback ports.

Redis runs with the compose service's own command (TLS only, password) and
the certificates from scripts/make-certs.sh; PostgreSQL with the compose
credentials; nginx with deploy/compose/nginx.conf. The two collab instances
run twice over (the ``stack`` fixture's parameter):

- ``venv``: this checkout's ``collab`` with the compose environment; host
  names and ports rewritten (compose service names -> 127.0.0.1, which the
  dev certificate also covers);
- ``image``: the built image (tests/support/image.py), each instance in a
  container of its own (tests/support/container.py) running the compose
  file's entrypoint, command, environment and volumes as they are, merged
  over the image's config the way Docker merges them. ``redis`` and
  ``postgres`` resolve (/etc/hosts) to the container's loopback, where their
  compose ports are forwarded to the servers on the host, so the TLS
  hostname checked is "redis", as under compose. A drift between compose and
  image (an entrypoint not on the image's PATH, a CA path that is not
  mounted, a file uid 10001 cannot read) fails here.

In both, only a 1 s drain differs from compose, to keep the test short. Two
clients that nginx sends to different instances must see each other's edits,
which needs every piece of the wiring: TLS, the CA path, the password kept
apart from the URL, the upstreams, the WebSocket upgrade headers. The clients
carry tokens minted with compose's development JWT secret in ``?token=``, as
a browser would, and no log line of nginx or collab may contain them.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest
import redis

from ..support.container import Sandbox, Volume, container_config
from ..support.postgres_server import PostgresServer
from ..support.tokens import mint, with_token
from ..support.waiting import wait_until
from .artifacts import MAKE_CERTS, NGINX_CONF, REPO, compose, compose_env, option, require_tool
from .imagerun import IMAGE_TIMEOUT
from .serverproc import (
    ServerProcess,
    YClient,
    free_port,
    hermetic_environ,
    venv_bin,
)

pytestmark = pytest.mark.anyio

COMPOSE_README = REPO / "deploy" / "compose" / "README.md"


def _redis_argv(certs: Path, port: int, workdir: Path) -> list[str]:
    command = compose()["services"]["redis"]["command"]
    argv = [str(a).replace("/certs/", f"{certs}/") for a in command]
    assert argv[0] == "redis-server"
    argv[0] = require_tool("redis-server")
    argv[argv.index("--tls-port") + 1] = str(port)
    # Test hygiene only: loopback, no persistence files outside tmp.
    return [*argv, "--bind", "127.0.0.1", "--dir", str(workdir), "--save", "", "--appendonly", "no"]


def _wait_redis(
    port: int, password: str, ca: Path, proc: subprocess.Popen[bytes], timeout: float = 20
) -> None:
    """Poll PING over TLS with the password until Redis answers."""
    client = redis.Redis(
        host="127.0.0.1",
        port=port,
        password=password,
        ssl=True,
        ssl_ca_certs=str(ca),
        socket_timeout=2,
        socket_connect_timeout=2,
    )
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"redis-server exited with {proc.returncode}")
            try:
                if client.ping():
                    return
            except redis.RedisError as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"TLS Redis never answered PING: {exc}") from exc
            time.sleep(0.05)
    finally:
        client.close()


def _collab_env(service: str, redis_port: int, certs: Path, store_url: str) -> dict[str, str]:
    env = compose_env(compose()["services"][service])
    env["COLLAB_REDIS_URL"] = re.sub(
        r"^rediss://redis:\d+/", f"rediss://127.0.0.1:{redis_port}/", env["COLLAB_REDIS_URL"]
    )
    assert env["COLLAB_REDIS_URL"].startswith("rediss://127.0.0.1:")
    assert env["COLLAB_REDIS_SSL_CA_CERTS"] == "/certs/ca.crt"
    env["COLLAB_REDIS_SSL_CA_CERTS"] = str(certs / "ca.crt")
    env["COLLAB_STORE_URL"] = store_url
    # Speed only: the compose value (10 s) would make the stop step wait 10 s.
    env["COLLAB_DRAIN_SECONDS"] = "1"
    return hermetic_environ(**env)


def _collab_argv(service: str, port: int) -> list[str]:
    svc = compose()["services"][service]
    argv = [*svc["entrypoint"], *svc["command"]]
    assert argv[0] == "collab" and option(argv, "--host") == "0.0.0.0"
    argv[0] = venv_bin("collab")
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


def _service_address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    assert parts.hostname and parts.port, url
    return parts.hostname, parts.port


def _compose_volumes(service: str, certs: Path) -> list[Volume]:
    """The service's compose bind mounts, with the certificates from ``certs``
    standing in for ./deploy/compose/certs."""
    volumes = []
    for spec in compose()["services"][service].get("volumes", []):
        source, target, *options = spec.split(":")
        prefix = "./deploy/compose/certs"
        assert source.startswith(prefix), f"{service} mounts {source}: teach this test"
        volumes.append(
            Volume(
                certs / source.removeprefix(prefix).lstrip("/"), target, readonly="ro" in options
            )
        )
    return volumes


def _image_collab(
    service: str,
    request: pytest.FixtureRequest,
    tmp: Path,
    certs: Path,
    redis_port: int,
    pg_port: int,
    cleanup: ExitStack,
) -> ServerProcess:
    """``docker compose up <service>``: the service's entrypoint, command,
    environment and volumes over the built image, in a container of its own."""
    built = request.getfixturevalue("built_image")
    lower = request.getfixturevalue("image_root")
    svc = compose()["services"][service]
    env = compose_env(svc)
    # Speed only: the compose value (10 s) would make the stop step wait 10 s.
    env["COLLAB_DRAIN_SECONDS"] = "1"
    redis_host, redis_compose_port = _service_address(env["COLLAB_REDIS_URL"])
    pg_host, pg_compose_port = _service_address(env["COLLAB_STORE_URL"])
    assert {redis_host, pg_host} == {"redis", "postgres"} <= set(compose()["services"])
    config = container_config(
        built, entrypoint=svc["entrypoint"], command=svc["command"], environment=env
    )
    port = int(option(config.argv, "--port"))
    box = Sandbox(
        built,
        lower,
        tmp / service,
        hostname=service,
        volumes=_compose_volumes(service, certs),
        publish=[port],
        reach={redis_compose_port: redis_port, pg_compose_port: pg_port},
        hosts={redis_host: "127.0.0.1", pg_host: "127.0.0.1"},
    )
    cleanup.callback(box.stop)
    box.start()
    return ServerProcess(
        box.exec_argv(config.argv, config),
        {},
        box.host_port(port),
        box.state,
        tmp / f"{service}.log",
    )


def _nginx_conf(tmp: Path, listen: int, upstreams: dict[str, int]) -> Path:
    text = NGINX_CONF.read_text()
    text = re.sub(r"listen\s+8080;", f"listen 127.0.0.1:{listen};", text)
    for service, port in upstreams.items():
        text, count = re.subn(rf"\b{re.escape(service)}:1234\b", f"127.0.0.1:{port}", text)
        assert count == 1, service
    # One worker: round-robin state is per worker, and the test relies on
    # consecutive connections alternating between the two instances.
    text, count = re.subn(r"worker_processes\s+\w+;", "worker_processes 1;", text)
    assert count == 1
    conf = tmp / "nginx.conf"
    conf.write_text(text)
    return conf


@pytest.fixture(params=["venv", pytest.param("image", marks=IMAGE_TIMEOUT)])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, ServerProcess]]:
    certs = tmp_path / "certs"
    made = subprocess.run(
        ["bash", str(MAKE_CERTS), str(certs)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    collab_env = compose_env(compose()["services"]["collab-1"])
    password = collab_env["COLLAB_REDIS_PASSWORD"]
    pg_env = compose_env(compose()["services"]["postgres"])

    with ExitStack() as cleanup:
        redis_port = free_port()
        redis_log = (tmp_path / "redis.log").open("wb")
        cleanup.callback(redis_log.close)
        redis_proc = subprocess.Popen(
            _redis_argv(certs, redis_port, tmp_path), stdout=redis_log, stderr=subprocess.STDOUT
        )

        def stop_redis() -> None:
            redis_proc.kill()
            redis_proc.wait(10)

        cleanup.callback(stop_redis)
        _wait_redis(redis_port, password, certs / "ca.crt", redis_proc)

        pg = PostgresServer(
            user=pg_env["POSTGRES_USER"],
            password=pg_env["POSTGRES_PASSWORD"],
            database=pg_env["POSTGRES_DB"],
        )
        cleanup.enter_context(pg)
        compose_store = collab_env["COLLAB_STORE_URL"]
        store_url = compose_store.replace("@postgres:5432/", f"@127.0.0.1:{pg.port}/")
        assert store_url == pg.url, (store_url, pg.url)

        procs: dict[str, ServerProcess] = {}
        for service in ("collab-1", "collab-2"):
            if request.param == "image":
                proc = _image_collab(
                    service, request, tmp_path, certs, redis_port, pg.port, cleanup
                )
            else:
                port = free_port()
                proc = ServerProcess(
                    _collab_argv(service, port),
                    _collab_env(service, redis_port, certs, store_url),
                    port,
                    tmp_path,
                    tmp_path / f"{service}.log",
                )
            cleanup.callback(proc.kill)
            procs[service] = proc.start()

        nginx_port = free_port()
        conf = _nginx_conf(tmp_path, nginx_port, {s: p.port for s, p in procs.items()})
        nginx = ServerProcess(
            [
                require_tool("nginx"),
                "-p",
                str(tmp_path),
                "-e",
                "stderr",
                "-c",
                str(conf),
                "-g",
                f"daemon off; pid {tmp_path}/nginx.pid;",
            ],
            hermetic_environ(),
            nginx_port,
            tmp_path,
            tmp_path / "nginx.log",
            cleanup_signal=signal.SIGTERM,
        )
        cleanup.callback(nginx.kill)
        procs["nginx"] = nginx
        yield procs


async def _connections(server: ServerProcess) -> float:
    text = (await server.get("/metrics")).text
    values = re.findall(r'^collab_active_connections\{endpoint="ywebsocket"\} (\S+)$', text, re.M)
    return float(values[0]) if values else 0.0


def _dev_token(room_pattern: str) -> str:
    """What the application would hand its browser clients in development."""
    secret = compose_env(compose()["services"]["collab-1"])["COLLAB_JWT_SECRET"]
    return mint(secret, rooms=[room_pattern])


def _assert_no_token_logged(stack: dict[str, ServerProcess], token: str) -> None:
    signature = token.rsplit(".", 1)[1]
    for name, server in stack.items():
        output = server.output()
        assert token not in output and signature not in output, f"{name} logged the token"


async def test_two_instances_behind_nginx_share_a_room(stack: dict[str, ServerProcess]) -> None:
    one, two, nginx = stack["collab-1"], stack["collab-2"], stack["nginx"]
    token = _dev_token("compose/*")
    # Both instances ready (store and TLS Redis ok) before nginx sees them,
    # so no failed connect marks an upstream down.
    for server in (one, two):
        ready = await server.wait_status("/readyz", 200)
        assert ready.json()["status"] == "ok", ready.text
    nginx.start()
    await nginx.wait_status("/healthz", 200)

    url = with_token(f"{nginx.ws_base}/compose/room", token)
    a = await YClient.connect(url)
    b = await YClient.connect(url)
    await a.handshake()
    await b.handshake()
    assert (await _connections(one), await _connections(two)) == (1.0, 1.0), (
        "nginx did not spread the two sockets over both instances"
    )

    await a.insert("through nginx and TLS Redis")
    await b.wait_text("through nginx and TLS Redis")

    # `docker compose stop collab-1`: the socket on it gets 1001 with a
    # reason; the one on collab-2 stays open.
    one.terminate()
    closes: list[tuple[int | None, str]] = []
    closed = anyio.Event()

    async def watch(client: YClient) -> None:
        closes.append(await client.wait_closed(timeout=30))
        closed.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch, a)
        tg.start_soon(watch, b)
        assert await one.wait_exit() == 0, one.output()
        with anyio.fail_after(10):
            await closed.wait()
        tg.cancel_scope.cancel()
    assert len(closes) == 1 and closes[0][0] == 1001 and closes[0][1], closes
    await a.close()
    await b.close()
    # nginx logs a WebSocket when it ends: both handshakes, path only.
    await wait_until(
        lambda: nginx.output().count("GET /compose/room HTTP/1.1") == 2,
        timeout=10,
        what="nginx access lines for both sockets",
    )
    _assert_no_token_logged(stack, token)


async def test_readme_snippet_runs_against_the_stack(stack: dict[str, ServerProcess]) -> None:
    text = COMPOSE_README.read_text(encoding="utf-8")
    blocks = re.findall(r"```sh\n\.venv/bin/python - <<'EOF'\n(.*?)\nEOF\n```", text, re.S)
    assert len(blocks) == 1, "the README's Python demo was not found"
    nginx = stack["nginx"]
    for service in ("collab-1", "collab-2"):
        await stack[service].wait_status("/readyz", 200)
    nginx.start()
    await nginx.wait_status("/healthz", 200)

    code = blocks[0].replace("ws://localhost:8080/", f"{nginx.ws_base}/")
    assert code != blocks[0]
    result = await anyio.run_process([sys.executable, "-c", code], check=False)
    output = (result.stdout + result.stderr).decode(errors="replace")
    assert result.returncode == 0, output
    assert "B sees: hello from A" in output
