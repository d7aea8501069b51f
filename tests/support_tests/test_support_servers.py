"""tests/support/servers.py: run_collab (with stand-in servers, the real one is
not written yet) and run_app; plus ports and certs."""

from __future__ import annotations

import asyncio
import ssl
import textwrap
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.support.certs import make_certs
from tests.support.ports import free_ports, port_is_listening
from tests.support.servers import ServerStartError, run_app, run_collab

pytestmark = pytest.mark.anyio

# A stand-in for `python -m collab serve --host H --port P`: prints its argv
# and environment, then serves /healthz (200, or 503 with --mode unhealthy)
# until SIGTERM; --mode crash exits at once like a configuration error.
STUB = textwrap.dedent(
    """
    import argparse, os, sys
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    parser = argparse.ArgumentParser()
    parser.add_argument("cmd")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--mode", default="ok")
    args = parser.parse_args()
    print("stub argv", sys.argv[1:], "store", os.environ.get("COLLAB_STORE_URL"),
          "leak", os.environ.get("COLLAB_LEAK"), flush=True)
    if args.mode == "crash":
        sys.exit("stub: configuration error: COLLAB_REDIS_URL is malformed")

    async def healthz(request):
        if args.mode == "unhealthy":
            return PlainTextResponse("no", status_code=503)
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/healthz", healthz)])
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    """
)


def _write_stub(tmp_path: Path) -> None:
    package = tmp_path / "stubcollab"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(STUB)


async def test_run_collab_starts_waits_for_health_and_terminates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_stub(tmp_path)
    monkeypatch.setenv("COLLAB_LEAK", "from the developer shell")
    async with run_collab(
        tmp_path, env={"COLLAB_STORE_URL": "memory://"}, module="stubcollab"
    ) as srv:
        assert srv.url == f"http://127.0.0.1:{srv.port}"
        assert srv.ws_url == f"ws://127.0.0.1:{srv.port}"
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(f"{srv.url}/healthz")).text == "ok"
        log = await srv.wait_for_log("store memory://", timeout=5)
        assert f"--port', '{srv.port}'" in log and "'--host', '127.0.0.1'" in log
        assert "leak None" in log  # inherited COLLAB_* variables are dropped
    # A graceful SIGTERM shutdown: uvicorn re-raises the signal once done, hence -15.
    assert srv.returncode in (0, -15)
    assert "Finished server process" in srv.log_text()
    assert not port_is_listening(srv.port)


async def test_run_collab_extra_args_and_crash_is_reported_with_log(tmp_path: Path) -> None:
    _write_stub(tmp_path)
    with pytest.raises(ServerStartError, match="exited with code 1") as info:
        async with run_collab(
            tmp_path, args=["--mode", "crash"], module="stubcollab", startup_timeout=20
        ):
            pytest.fail("must not get here")
    assert "COLLAB_REDIS_URL is malformed" in str(info.value)


async def test_run_collab_unhealthy_times_out_and_kills(tmp_path: Path) -> None:
    _write_stub(tmp_path)
    with pytest.raises(ServerStartError, match="HTTP 503"):
        async with run_collab(
            tmp_path, args=["--mode", "unhealthy"], module="stubcollab", startup_timeout=3
        ):
            pytest.fail("must not get here")


async def test_run_collab_kill_is_available_to_tests(tmp_path: Path) -> None:
    _write_stub(tmp_path)
    async with run_collab(tmp_path, module="stubcollab") as srv:
        assert await srv.kill() == -9
        assert not port_is_listening(srv.port)


async def _hello(request: object) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def test_run_app_serves_in_process_and_stops() -> None:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(routes=[Route("/", _hello)], lifespan=lifespan)
    async with run_app(app) as running:
        assert events == ["startup"]
        async with httpx.AsyncClient(timeout=5) as client:
            assert (await client.get(running.url)).text == "hello"
    assert events == ["startup", "shutdown"]
    assert not port_is_listening(running.port)


async def test_run_app_failed_lifespan_is_an_error_not_a_systemexit() -> None:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("dependency down")
        yield

    with pytest.raises(ServerStartError, match="lifespan"):
        async with run_app(Starlette(lifespan=lifespan), log_level="critical"):
            pytest.fail("must not get here")


def test_free_ports_are_distinct() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5 and all(1024 < p < 65536 for p in ports)


async def test_certs_verify_both_ways(tmp_path: Path) -> None:
    certs = make_certs(tmp_path / "pki")
    server_ctx = certs.server_ssl_context(require_client_cert=True)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert")
        writer.write(dict(x[0] for x in peer["subject"])["commonName"].encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    async with server:
        for host in ("127.0.0.1", "localhost"):
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=certs.client_ssl_context(), server_hostname=host
                ),
                5,
            )
            assert await asyncio.wait_for(reader.read(), 5) == b"collab-test-client"
            writer.close()
        # Without the CA the server certificate is not trusted.
        with pytest.raises(ssl.SSLCertVerificationError):
            await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=ssl.create_default_context()), 5
            )
