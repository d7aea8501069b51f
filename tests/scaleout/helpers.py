"""Several ``collab serve`` processes on one real Redis (TLS + AUTH), driven by
real JavaScript Yjs clients: the production topology of issue 3, on loopback.

Every instance is a separate process with its own instance id and a JSON
log; ``ready`` waits until its ``/readyz`` says 200, i.e. the Redis link and
subscriber loop are up (TLS handshake and AUTH done), so no test starts
editing against a half-connected cluster.
"""

from __future__ import annotations

import itertools
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

from pycrdt import Doc, Text

from collab.stores.postgres import PostgresStore
from tests.observability.common import eventually, get_json, json_lines
from tests.support.jsclient import JSClient
from tests.support.servers import CollabProcess, run_collab

# Fast failure detection and recovery, so a fault test takes seconds.
BASE_ENV = {
    "COLLAB_LOG_FORMAT": "json",
    "COLLAB_REDIS_BACKOFF_BASE": "0.05",
    "COLLAB_REDIS_BACKOFF_CAP": "0.5",
    "COLLAB_REDIS_SOCKET_TIMEOUT": "1",
    "COLLAB_FLUSH_DEBOUNCE": "0.05",
    "COLLAB_FLUSH_MAX_WAIT": "0.2",
    "COLLAB_ROOM_GRACE": "30",
}
T_MS = 20_000  # JS waits

_tokens = itertools.count(1)


def tokens(tag: str, n: int) -> list[str]:
    """Unique edit markers: ``<tag:17>``; each is one insert."""
    return [f"<{tag}:{next(_tokens)}>" for _ in range(n)]


def found(text: str) -> set[str]:
    return set(re.findall(r"<[^<>]+>", text))


async def readyz(srv: CollabProcess) -> tuple[int, Any]:
    return await get_json(srv.url + "/readyz")


async def until_ready(srv: CollabProcess, status: int = 200, timeout: float = 20) -> Any:
    _, body = await eventually(lambda: readyz(srv), lambda r: r[0] == status, timeout)
    return body


@asynccontextmanager
async def instances(
    tmp_path: Path, count: int, env: Mapping[str, str], args: tuple[str, ...] = ()
) -> AsyncIterator[list[CollabProcess]]:
    """``count`` collab processes with ``env`` (plus BASE_ENV), all ready."""
    async with AsyncExitStack() as stack:
        procs = []
        for i in range(count):
            proc_env = {**BASE_ENV, "COLLAB_INSTANCE_ID": f"inst-{i}", **env}
            procs.append(
                await stack.enter_async_context(
                    run_collab(tmp_path / f"inst-{i}", proc_env, args, name=f"inst-{i}")
                )
            )
        for proc in procs:
            await until_ready(proc)
        yield procs


@asynccontextmanager
async def js_client(tmp_path: Path) -> AsyncIterator[JSClient]:
    async with JSClient.start(tmp_path / "js") as js:
        yield js


async def type_tokens(js: JSClient, handle: str, marks: list[str]) -> None:
    """Insert each marker at the end of the handle's text, one edit each."""
    for mark in marks:
        await js.call("insert", handle=handle, text=mark)


async def converged(
    js: JSClient, handles: list[str], marks: list[str], timeout_ms: int = T_MS
) -> str:
    """Every handle's text holds every marker, and all texts are equal."""
    texts = [
        await js.call("wait_text", handle=h, contains=marks, timeout_ms=timeout_ms) for h in handles
    ]
    for handle, text in zip(handles, texts, strict=True):
        missing = set(marks) - found(text)
        assert not missing, f"{handle} lacks {sorted(missing)}"
    # The texts may differ for a moment while the last updates are in flight.
    final = await js.call("text", handle=handles[0])
    for handle in handles[1:]:
        await js.call("wait_text", handle=handle, equals=final, timeout_ms=timeout_ms)
    return str(final)


def connections_opened(srv: CollabProcess, room: str) -> list[dict[str, Any]]:
    """The "connection opened" records of ``room`` in an instance's JSON log."""
    return [
        r
        for r in json_lines(srv.log_text())
        if r.get("msg") == "connection opened" and r.get("room") == room
    ]


# -- a load balancer in front (the ALB's part), and the shared store --------------

_NGINX_CONF = """\
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
    map $http_upgrade $connection_upgrade {{ default upgrade; "" ""; }}
    upstream collab {{
{servers}
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://collab;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_read_timeout 3600s;
            proxy_connect_timeout 2s;
            # A dead instance refuses the connect: the handshake moves on to
            # the next one, as an ALB's health-checked target group would.
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""


@asynccontextmanager
async def load_balancer(tmp_path: Path, procs: list[CollabProcess]) -> AsyncIterator[str]:
    """nginx round-robin over ``procs``; yields its ws:// base URL."""
    from tests.deploy.artifacts import require_tool
    from tests.deploy.serverproc import ServerProcess, free_port, hermetic_environ

    directory = tmp_path / "nginx"
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    servers = "\n".join(
        f"        server 127.0.0.1:{p.port} max_fails=1 fail_timeout=30s;" for p in procs
    )
    conf = directory / "nginx.conf"
    conf.write_text(_NGINX_CONF.format(servers=servers, port=port))
    nginx = ServerProcess(
        [
            require_tool("nginx"),
            "-p",
            str(directory),
            "-e",
            "stderr",
            "-c",
            str(conf),
            "-g",
            f"daemon off; pid {directory}/nginx.pid;",
        ],
        hermetic_environ(),
        port,
        directory,
        directory / "nginx.log",
        cleanup_signal=signal.SIGTERM,
    )
    try:
        nginx.start()
        await nginx.wait_status("/healthz", 200)
        yield nginx.ws_base
    finally:
        nginx.kill()


@asynccontextmanager
async def stored_marks(store_url: str) -> AsyncIterator[Callable[[str], Awaitable[set[str]]]]:
    """A reader of the shared store, opened once: ``await marks(room)`` is the
    set of markers the store holds for ``room`` now (what it acknowledged)."""
    store = PostgresStore(store_url)
    await store.open()

    async def marks(room: str) -> set[str]:
        update = await store.load(room)
        if update is None:
            return set()
        doc: Doc[Any] = Doc()
        doc.apply_update(update)
        return found(str(doc.get("text", type=Text)))

    try:
        yield marks
    finally:
        await store.close()
